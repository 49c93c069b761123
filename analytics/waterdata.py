"""The water balance over stored readings: the DMA topology from the registry, the meters' flow from
InfluxDB as 15-minute means on a grid, analytics/water.py over them, and the rows people read (the
`city water-balance` table and --json, the weekly report's CSV) and the `water_balance` measurement
Grafana's water-balance board reads.

InfluxDB is read a few days at a time (`FETCH_DAYS`), every water meter of the registry's DMAs at once.
"""

import csv
import io
from dataclasses import dataclass

import numpy as np

from analytics.water import Bursts, WaterBalance, WaterParams, dma_flows, find_bursts, rank_dmas, water_balance
from telemetry_shared.influx import InfluxQL, quote_ident
from telemetry_shared.network import Topology

STEP_MS = 900_000  # 15 minutes: the grid of the balance
FETCH_DAYS = 7
MAX_DAYS = 400  # one request: a year and a bit
MEASUREMENT = "water_balance"  # what write_lines stores (tag dma; fields as ROW_FIELDS)


class WaterDataError(ValueError):
    pass


@dataclass(frozen=True)
class DmaReport:
    """The balance of a date range: per DMA and day, the ranking, and the bursts found."""

    topology: Topology
    balance: WaterBalance
    order: np.ndarray  # DMA rows, leakiest first
    bursts: Bursts
    connections: np.ndarray  # customer meters per DMA


def fetch_flows(client: InfluxQL, meters: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    """(meters, intervals) mean flow_lps of each meter per 15 minutes from start_ms to end_ms (NaN: none)."""
    k = (end_ms - start_ms) // STEP_MS
    out = np.full((len(meters), k), np.nan)
    row_of = {m: i for i, m in enumerate(meters)}
    for first in range(start_ms, end_ms, FETCH_DAYS * 86_400_000):
        last = min(end_ms, first + FETCH_DAYS * 86_400_000)
        series = client.series(f'SELECT mean({quote_ident("flow_lps")}) FROM {quote_ident("water")} '
                               f"WHERE time >= {first}ms AND time < {last}ms "
                               f'GROUP BY time(15m), "device" fill(none)')
        for s in series:  # one per device: parsing the answer, not computing
            row = row_of.get(s.get("tags", {}).get("device", ""))
            if row is None or not s.get("values"):
                continue
            values = np.array([(v[0], np.nan if v[1] is None else v[1]) for v in s["values"]], dtype=np.float64)
            cols = ((values[:, 0].astype(np.int64) - start_ms) // STEP_MS)
            keep = (cols >= 0) & (cols < k)
            out[row, cols[keep]] = values[keep, 1]
    return out


def report(client: InfluxQL, topology: Topology, start_ms: int, end_ms: int, params: WaterParams,
           zone: str = "", utc_offset_h: float = 0) -> DmaReport:
    """The balance of every DMA of `topology` from start_ms to end_ms (Unix ms, on 15-minute boundaries)."""
    if len(topology.ids) == 0:
        raise WaterDataError("no DMA in the registry: set them with `city network dma`")
    if end_ms <= start_ms or (end_ms - start_ms) > MAX_DAYS * 86_400_000:
        raise WaterDataError(f"the range must be from before to, at most {MAX_DAYS} days")
    inlet = topology.role == "inlet"
    customer = topology.role == "customer"
    # the last day's leakage steps towards the next night's: read up to the end of that night when it is there
    flows_all = fetch_flows(client, topology.meters, start_ms, end_ms + params.night_window_h[1] * 3_600_000)
    times = start_ms + np.arange(flows_all.shape[1], dtype=np.int64) * STEP_MS
    flows = dma_flows(flows_all[inlet], topology.network_of[inlet], flows_all[customer],
                      topology.network_of[customer], topology.parent)
    balance = water_balance(flows, times, STEP_MS, params, zone, utc_offset_h).days_before(end_ms)
    connections = np.bincount(topology.network_of[customer], minlength=len(topology.ids))
    found = find_bursts(flows, times, STEP_MS, params)
    within = found.t_ms <= end_ms
    bursts = Bursts(found.dma[within], found.t_ms[within], found.rise_lps[within])
    return DmaReport(topology, balance, rank_dmas(balance, connections), bursts, connections)


ROW_FIELDS = ("system_input_m3", "billed_m3", "real_losses_m3", "apparent_losses_m3", "nrw_m3", "nrw_pct",
              "night_flow_lps", "night_use_lps", "leakage_lps", "coverage")


def _number(value: float, decimals: int = 3) -> float | None:
    return None if not np.isfinite(value) else round(float(value), decimals)


def summary_rows(rep: DmaReport) -> list[dict]:
    """One row per DMA in ranking order: totals over the range (m3), NRW %, mean night flows (L/s), bursts."""
    b = rep.balance
    rows = []
    burst_count = np.bincount(rep.bursts.dma, minlength=len(rep.topology.ids))
    for rank, row in enumerate(rep.order, start=1):  # the DMAs of one report: hundreds, for output
        with np.errstate(invalid="ignore"):
            siv = np.nansum(b.system_input_m3[row])
            nrw = np.nansum(b.nrw_m3[row])
            measured = np.isfinite(b.system_input_m3[row]).sum()
            real_day = np.nanmean(b.real_losses_m3[row]) if measured else np.nan
        rows.append({
            "rank": rank, "dma": str(rep.topology.ids[row]), "name": str(rep.topology.names[row]),
            "connections": int(rep.connections[row]), "days": int(measured),
            "system_input_m3": _number(siv, 1), "billed_m3": _number(np.nansum(b.billed_m3[row]), 1),
            "real_losses_m3": _number(np.nansum(b.real_losses_m3[row]), 1),
            "apparent_losses_m3": _number(np.nansum(b.apparent_losses_m3[row]), 1),
            "nrw_m3": _number(nrw, 1), "nrw_pct": _number(100 * nrw / siv, 1) if siv > 0 else None,
            "leakage_m3_per_day": _number(real_day, 2),
            "leakage_l_per_connection_day": _number(1000 * real_day / max(rep.connections[row], 1), 1),
            "night_flow_lps": _number(np.nanmean(b.night_flow_lps[row]) if measured else np.nan),
            "night_use_lps": _number(np.nanmean(b.night_use_lps[row]) if measured else np.nan),
            "bursts": int(burst_count[row]),
        })
    return rows


def daily_rows(rep: DmaReport) -> list[dict]:
    """One row per DMA and day (the CSV): the IWA balance as computed."""
    b = rep.balance
    rows = []
    for row, dma in enumerate(rep.topology.ids):
        for col, day_ms in enumerate(b.day_ms):
            rows.append({"dma": str(dma), "day_ms": int(day_ms)} |
                        {name: _number(getattr(b, name)[row, col]) for name in ROW_FIELDS})
    return rows


def burst_rows(rep: DmaReport) -> list[dict]:
    return [{"dma": str(rep.topology.ids[d]), "t_ms": int(t), "rise_lps": _number(r, 2)}
            for d, t, r in zip(rep.bursts.dma, rep.bursts.t_ms, rep.bursts.rise_lps, strict=True)]


def to_csv(rows: list[dict]) -> str:
    """Rows as CSV (a header line; empty cells where a value is unknown)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_lines(rep: DmaReport, districts: dict[str, str]) -> list[str]:
    """The daily balance as line protocol for `water_balance` (tags dma and district, at local midnight): the
    water board's balance panels. districts: DMA id -> the district of its first inlet meter."""
    lines = []
    for item in daily_rows(rep):
        fields = ",".join(f"{name}={item[name]}" for name in ROW_FIELDS if item[name] is not None)
        if fields:
            district = districts.get(item["dma"], "")
            tags = f"dma={item['dma']}" + (f",district={district}" if district else "")
            lines.append(f"{MEASUREMENT},{tags} {fields} {item['day_ms']}")
    return lines


def dma_districts(topology: Topology, district_of: dict[str, str]) -> dict[str, str]:
    """DMA id -> the district of its first inlet meter (district_of: device id -> district)."""
    out: dict[str, str] = {}
    for meter, row, role in zip(topology.meters, topology.network_of, topology.role, strict=True):
        if role == "inlet" and str(topology.ids[row]) not in out:
            out[str(topology.ids[row])] = district_of.get(str(meter), "")
    return out
