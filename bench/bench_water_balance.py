"""A year of 15-minute readings for 500 DMAs and 50,000 customer meters balanced (analytics/water.py: the
meters summed into their DMAs, the daily IWA balance, the night flow and the leakage step fit), against a
plain pandas groupby doing the same sums in the same run. The readings are made a few days at a time by the
simulator (fleetsim/waternet.py), so memory stays bounded; making them is not timed, balancing is.

Each chunk is balanced by both, one after the other (ours first in odd chunks, pandas first in even ones);
the figures are the totals over the year and the median seconds a chunk, with the ratio pandas / ours.

    .venv/bin/python bench/bench_water_balance.py [--dmas 500] [--customers 50000] [--days 365] [--chunk-days 7]
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware-sim"))
from fleetsim import waternet  # noqa: E402

from analytics.localtime import to_local  # noqa: E402
from analytics.water import WaterParams, dma_flows, water_balance  # noqa: E402

OFFSET_H = 7  # a fixed zone: the bench measures arithmetic, not a city
START_MS = 1_767_225_600_000 - OFFSET_H * 3_600_000  # a local midnight
DAY_MS = 86_400_000


def ours(net: waternet.WaterNet, data: waternet.Chunk, params: WaterParams):
    flows = dma_flows(data.inlet_lps, net.inlet_dma, data.customer_lps, net.customer_dma, net.parent)
    return water_balance(flows, data.times_ms, net.step_ms, params, utc_offset_h=OFFSET_H)


def with_pandas(net: waternet.WaterNet, data: waternet.Chunk, params: WaterParams) -> pd.DataFrame:
    """The same sums written as a pandas user would: group the meters into DMAs, then the intervals into days."""
    gross = pd.DataFrame(data.inlet_lps, dtype="float64").groupby(net.inlet_dma).sum()
    to_children = gross.groupby(net.parent).sum().drop(index=-1, errors="ignore")
    net_inflow = gross.sub(to_children.reindex(gross.index, fill_value=0.0))
    metered = pd.DataFrame(data.customer_lps).groupby(net.customer_dma).sum().astype("float64")
    local = to_local(data.times_ms, "", OFFSET_H)
    day = local // DAY_MS
    hour = (local % DAY_MS) / 3_600_000
    night = (hour >= params.night_window_h[0]) & (hour < params.night_window_h[1])
    to_m3 = net.step_ms / 1e6
    siv = net_inflow.T.groupby(day).sum().T * to_m3
    billed = metered.T.groupby(day).sum().T * to_m3
    night_flow = net_inflow.T[night].groupby(day[night]).mean().T
    night_use = metered.T[night].groupby(day[night]).mean().T
    leakage = night_flow - night_use
    real = leakage * 86.4 * params.hour_day_factor_h / 24
    return pd.concat({"siv": siv, "billed": billed, "losses": siv - billed, "real": real,
                      "apparent": siv - billed - real, "nrw_pct": 100 * (siv - billed) / siv}, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dmas", type=int, default=500)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--chunk-days", type=int, default=7)
    args = parser.parse_args()
    net = waternet.plan(args.dmas, args.customers, args.days, seed=7, start_ms=START_MS, utc_offset_h=OFFSET_H)
    params = WaterParams()
    per_day = net.samples_per_day
    spent = {"ours": [], "pandas": []}
    made_s = 0.0
    balance = None
    started = time.perf_counter()
    for index, first_day in enumerate(range(0, args.days, args.chunk_days)):
        days = min(args.chunk_days, args.days - first_day)
        t0 = time.perf_counter()
        data = waternet.chunk(net, first_day * per_day, days * per_day)
        made_s += time.perf_counter() - t0
        order = ("ours", "pandas") if index % 2 == 0 else ("pandas", "ours")
        for name in order:
            t0 = time.perf_counter()
            if name == "ours":
                part = ours(net, data, params)
            else:
                frame = with_pandas(net, data, params)
            spent[name].append(time.perf_counter() - t0)
        np.testing.assert_allclose(frame["siv"].to_numpy(), part.system_input_m3, rtol=1e-6)  # the same answer
        balance = part if balance is None else balance.concat(part)
        del data, frame
        print(f"\r{first_day + days}/{args.days} days", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    total = {name: sum(times) for name, times in spent.items()}
    values = args.days * per_day * (args.customers + len(net.inlet_ids))
    print(f"{args.dmas} DMAs, {args.customers:,} customer meters, {len(net.inlet_ids)} inlet meters, "
          f"{args.days} days at 15 min: {values / 1e9:.2f} billion readings, {len(spent['ours'])} chunks of "
          f"{args.chunk_days} days")
    for name in ("ours", "pandas"):
        print(f"  {name:7s} balance: {total[name]:6.1f} s in all, median {np.median(spent[name]):.3f} s a chunk, "
              f"{values / total[name] / 1e6:.0f} M readings/s")
    print(f"  pandas / ours: {total['pandas'] / total['ours']:.2f}x in all, "
          f"{np.median(np.array(spent['pandas']) / np.array(spent['ours'])):.2f}x median of per-chunk ratios")
    wall = time.perf_counter() - started
    print(f"  making the readings (simulator, not timed above): {made_s:.1f} s; wall {wall:.0f} s;"
          f" peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"  target < 30 s: {'met' if total['ours'] < 30 else 'NOT met'}; balance {balance.system_input_m3.shape}")


if __name__ == "__main__":
    main()
