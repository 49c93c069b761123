"""The electricity report's arithmetic at city scale, numpy against a plain pandas groupby in the same run.

    python3 bench/bench_power.py                  # 50,000 meters x a week of 10-min means; 1,000 feeders x 28 days
    python3 bench/bench_power.py --meters 5000 --runs 3

EN 50160: `weekly_compliance` over every meter's week of 10-minute mean voltages (1,008 a meter) and one
frequency reading per 10 minutes, in blocks of --block meters (memory stays at a block's arrays; each block
is one vectorised call). The pandas baseline does the same on a long table (meter, value) for --pandas-meters
meters (a long table of 50,000 x 1,008 rows needs ~1.2 GB): a groupby per meter counting values inside the
band and outside the always-limits, min and max, then the verdict; numpy runs on that same subset too, so
the ratio is measured on identical data. Losses and tampering: `feeder_losses` and `tampering_suspects` over
--customers meters on --feeders feeders for --days days; pandas baseline: groupby(feeder, day).sum() of the
customers minus the transformers. Medians of --runs runs, wall seconds; the load average is printed (the
machine is shared).
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.en50160 import SLOTS_PER_WEEK, Limits, weekly_compliance  # noqa: E402
from analytics.feederloss import feeder_losses, tampering_suspects  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402


def median_s(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def voltages(meters: int, nominal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = nominal * (1 + rng.uniform(0.01, 0.05, (meters, 1)) * rng.standard_normal((meters, SLOTS_PER_WEEK)))
    v[rng.random(v.shape) < 0.01] = np.nan
    f = rng.normal(1.0, 0.003, (meters, SLOTS_PER_WEEK))
    return v, f


def numpy_en50160(meters: int, block: int, limits: Limits) -> float:
    """Seconds spent in weekly_compliance over every block (making the data is not counted)."""
    spent = 0.0
    for start in range(0, meters, block):  # blocks of meters bound the memory; each block is one call
        v, f = voltages(min(block, meters - start), limits.nominal_v, start)
        f *= limits.nominal_hz
        began = time.perf_counter()
        weekly_compliance(v, f, limits)
        spent += time.perf_counter() - began
    return spent


def pandas_en50160(v: np.ndarray, f: np.ndarray, limits: Limits):
    import pandas as pd

    meters = np.repeat(np.arange(v.shape[0]), v.shape[1])
    table = pd.DataFrame({"meter": meters, "v": v.ravel(), "f": f.ravel()}).dropna()
    lo, hi = limits.voltage_band_v
    alo, ahi = limits.voltage_always_v
    flo, fhi = limits.frequency_band_hz
    falo, fahi = limits.frequency_always_hz
    table["v_in"] = table["v"].between(lo, hi)
    table["v_out"] = (table["v"] < alo) | (table["v"] > ahi)
    table["f_in"] = table["f"].between(flo, fhi)
    table["f_out"] = (table["f"] < falo) | (table["f"] > fahi)
    g = table.groupby("meter").agg(n=("v", "size"), v_in=("v_in", "sum"), v_out=("v_out", "sum"),
                                   v_min=("v", "min"), v_max=("v", "max"), f_in=("f_in", "sum"),
                                   f_out=("f_out", "sum"))
    ok = (g.v_in >= np.ceil(0.95 * g.n - 1e-9)) & (g.v_out == 0) & (g.f_in >= np.ceil(0.995 * g.n - 1e-9)) & \
        (g.f_out == 0)
    return ok


def feeders(customers: int, n_feeders: int, days: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    feeder_of = np.sort(rng.integers(0, n_feeders, customers))
    used = rng.lognormal(np.log(8), 0.5, (customers, 1)) * rng.lognormal(0, 0.15, (customers, days))
    tampered = rng.random(customers) < 0.02
    start = rng.integers(days // 4, 3 * days // 4, customers)
    recorded = np.where(tampered[:, None] & (np.arange(days)[None, :] >= start[:, None]), 0.5 * used, used)
    transformer = np.zeros((n_feeders, days))
    np.add.at(transformer, feeder_of, used)
    transformer *= 1.05
    return transformer, recorded, feeder_of


def pandas_losses(transformer: np.ndarray, customers: np.ndarray, feeder_of: np.ndarray):
    import pandas as pd

    days = customers.shape[1]
    table = pd.DataFrame({"feeder": np.repeat(feeder_of, days), "day": np.tile(np.arange(days), len(feeder_of)),
                          "kwh": customers.ravel()})
    billed = table.groupby(["feeder", "day"])["kwh"].sum().unstack().to_numpy()
    return transformer - billed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=50_000)
    parser.add_argument("--block", type=int, default=5_000)
    parser.add_argument("--pandas-meters", type=int, default=5_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--feeders", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    limits = Limits.from_grid(get_settings().city.grid)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    full = statistics.median(numpy_en50160(args.meters, args.block, limits) for _ in range(args.runs))
    v, f = voltages(args.pandas_meters, limits.nominal_v, 99)
    f = f * limits.nominal_hz
    same_numpy = median_s(lambda: weekly_compliance(v, f, limits), args.runs)
    same_pandas = median_s(lambda: pandas_en50160(v, f, limits), args.runs)
    agree = (weekly_compliance(v, f, limits).overall[:, 0] == "pass") == pandas_en50160(v, f, limits).to_numpy()
    points = args.meters * SLOTS_PER_WEEK
    print(f"EN 50160, {args.meters:,} meters x 1,008 ten-minute means (a week), blocks of {args.block:,}: "
          f"numpy {full:.2f} s median ({points / full / 1e6:.1f} M ten-minute means/s)")
    print(f"  same {args.pandas_meters:,} meters: numpy {same_numpy * 1000:.0f} ms, pandas groupby "
          f"{same_pandas * 1000:.0f} ms: pandas/numpy {same_pandas / same_numpy:.1f}x; verdicts agree on "
          f"{agree.mean() * 100:.1f} % of meters")

    transformer, customers, feeder_of = feeders(args.customers, args.feeders, args.days)
    losses_s = median_s(lambda: feeder_losses(transformer, customers, feeder_of), args.runs)
    pandas_s = median_s(lambda: pandas_losses(transformer, customers, feeder_of), args.runs)
    suspects_s = median_s(lambda: tampering_suspects(transformer, customers, feeder_of), args.runs)
    np.testing.assert_allclose(feeder_losses(transformer, customers, feeder_of).loss_kwh,
                               pandas_losses(transformer, customers, feeder_of), rtol=1e-9)
    print(f"losses, {args.customers:,} customers on {args.feeders:,} feeders x {args.days} days: numpy "
          f"{losses_s * 1000:.0f} ms, pandas groupby {pandas_s * 1000:.0f} ms (pandas/numpy "
          f"{pandas_s / losses_s:.1f}x, same figures); tampering suspects (Pettitt + joint step fit) "
          f"{suspects_s * 1000:.0f} ms")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
