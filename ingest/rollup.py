"""Storage lifecycle: raw readings kept for a configurable time, hourly and
daily rollups kept for years.

Works on every InfluxDB release because it uses only what they all serve: an
InfluxQL `SELECT min, mean, max, count ... GROUP BY time(...)` read and a line
protocol write of the results (no continuous queries, no tasks). Re-running a
period is harmless: an identical point (measurement, tags, time) overwrites,
so each run simply recomputes the last `lookback` hours, which also picks up
late backfill from devices that were offline.

Output, in retention policy `rollups` (kept for ever):
  <kind>_1h and <kind>_1d, tags device and district, fields
  <metric>_min, <metric>_mean, <metric>_max (floats), <metric>_count (integer),
  seq_min, seq_max, seq_distinct and seq_gaps (integers: messages missing in
  the period or since the previous one, counted across all workers; the first
  period of a run sees only its own gaps, a restarted sequence counts none).
  <kind>_district_1h: the open data's district x hour cells, summed from <kind>_1h
  each time an hour is rolled up (ingest/cells.py).
Daily periods start at local midnight: in the city's zone when one is given (a day of a
daylight-saving change is 23 or 25 hours long: each local day is queried on its own and stamped at
its midnight), else at the fixed UTC offset.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from edge import contract
from ingest.cells import write_cells
from telemetry_shared.influx import InfluxQL, LineWriter, quote_ident
from telemetry_shared.lineproto import escape_key

RAW_RP = "autogen"  # the database's default policy: where the workers write
ROLLUP_RP = "rollups"
PERIODS_MS = {"1h": 3_600_000, "1d": 86_400_000}
QUERY_WINDOW_MS = 24 * 3_600_000  # one query per kind per day of data: bounded answers
HOUR_MS = 3_600_000


@dataclass
class RollupReport:
    period: str
    start_ms: int
    end_ms: int
    points: int
    cells: int = 0  # district x hour cells (re)written (ingest/cells.py), hourly periods only


def period_start(t_ms: int, period: str, utc_offset_h: int) -> int:
    """The start of the period holding t_ms (daily periods begin at local midnight)."""
    size = PERIODS_MS[period]
    shift = utc_offset_h * HOUR_MS if period == "1d" else 0
    return (t_ms + shift) // size * size - shift


def local_day_offset(utc_offset_h: int) -> str:
    """The offset of InfluxQL's `GROUP BY time(1d, <offset>)` that starts each bucket at local midnight:
    at UTC+7 days start at 17:00 UTC (17h), at UTC-10 at 10:00 UTC (10h)."""
    return f"{(-utc_offset_h) % 24}h"


def _group_offset(period: str, utc_offset_h: int) -> str:
    return f", {local_day_offset(utc_offset_h)}" if period == "1d" else ""


def local_midnights(start_ms: int, end_ms: int, time_zone: str) -> list[int]:
    """The local midnights of `time_zone` (Unix ms) from the one at or before start_ms to the first at or after
    end_ms: the bounds of the local days in between, each 23, 24 or 25 hours long."""
    zone = ZoneInfo(time_zone)
    day = datetime.fromtimestamp(start_ms / 1000, zone).date()
    bounds = []
    while True:
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)
        bounds.append(midnight)
        if midnight >= end_ms:
            return bounds
        day += timedelta(days=1)


def rollup_query(kind: str, period: str, start_ms: int, end_ms: int, utc_offset_h: int,
                 whole_window: bool = False) -> str:
    """The rollup of [start_ms, end_ms): per `period` bucket, or (whole_window) one row per series for the
    whole window, stamped at its start (a local day of any length)."""
    selects = []
    for metric in contract.KINDS[kind]:
        m = quote_ident(metric)
        selects += [f"min({m}) AS {quote_ident(metric + '_min')}", f"mean({m}) AS {quote_ident(metric + '_mean')}",
                    f"max({m}) AS {quote_ident(metric + '_max')}", f"count({m}) AS {quote_ident(metric + '_count')}"]
    selects += ['min("seq") AS "seq_min"', 'max("seq") AS "seq_max"', 'count(distinct("seq")) AS "seq_distinct"']
    return (f"SELECT {', '.join(selects)} FROM {quote_ident(RAW_RP)}.{quote_ident(kind)} "
            f"WHERE time >= {start_ms}ms AND time < {end_ms}ms "
            + ('GROUP BY "device", "district"' if whole_window else
               f'GROUP BY time({period}{_group_offset(period, utc_offset_h)}), "device", "district" fill(none)'))


def rollup_lines(kind: str, period: str, series: list[dict], last_seq: dict[str, int] | None = None) -> list[str]:
    """Query results to line protocol: counts as integers, the rest as floats.

    `last_seq` (device -> seq_max of its previous period) carries the sequence
    audit across periods, so a message missing at a period boundary counts too."""
    last_seq = {} if last_seq is None else last_seq
    lines = []
    for one in series:
        tags = one.get("tags", {})
        head = (f"{kind}_{period},device={escape_key(tags.get('device', ''))},"
                f"district={escape_key(tags.get('district', ''))}")
        columns = one["columns"]
        for row in one.get("values", []):
            values = dict(zip(columns, row, strict=True))
            fields = []
            for name, value in values.items():
                if name == "time" or value is None:
                    continue
                if name.endswith("_count") or name.startswith("seq_"):
                    fields.append(f"{name}={int(value)}i")
                else:
                    fields.append(f"{name}={float(value)!r}")
            if values.get("seq_max") is not None:
                # influxd can answer a period with max(seq) but no count(distinct(seq)) (seen in a live city
                # with a 28-day backfill); the gaps are then unknown, not a crash of the whole rollup
                if values.get("seq_min") is not None and values.get("seq_distinct") is not None:
                    fields.append(f"seq_gaps={_gaps(values, last_seq.get(tags.get('device', '')))}i")
                last_seq[tags.get("device", "")] = int(values["seq_max"])
            if fields and tags.get("device"):
                lines.append(f"{head} {','.join(fields)} {values['time']}")
    return lines


def _gaps(values: dict, previous_max: int | None) -> int:
    """Messages missing inside the period, and between the previous period and this one.
    A sequence that restarts (a rebooted device) counts nothing, rather than a bogus number."""
    seq_min, seq_max, distinct = int(values["seq_min"]), int(values["seq_max"]), int(values["seq_distinct"])
    inside = max(0, seq_max - seq_min + 1 - distinct)
    between = max(0, seq_min - previous_max - 1) if previous_max is not None else 0
    return inside + between


def run_rollup(influx: InfluxQL, writer: LineWriter, period: str, start_ms: int, end_ms: int,
               utc_offset_h: int, time_zone: str = "") -> RollupReport:
    """Recompute every complete period between start_ms and end_ms (aligned to periods); daily periods in
    `time_zone`'s local days when given (daylight saving included), else at the fixed utc_offset_h."""
    if period == "1d" and time_zone:
        return _run_local_days(influx, writer, start_ms, end_ms, time_zone)
    start = period_start(start_ms, period, utc_offset_h)
    end = period_start(end_ms, period, utc_offset_h)
    points = cells = 0
    window = max(QUERY_WINDOW_MS, PERIODS_MS[period])
    for kind in contract.KINDS:
        last_seq: dict[str, int] = {}
        for lo in range(start, end, window):
            hi = min(lo + window, end)
            query = rollup_query(kind, period, lo, hi, utc_offset_h)
            lines = rollup_lines(kind, period, influx.series(query), last_seq)
            for chunk in range(0, len(lines), 5000):
                writer.write(lines[chunk:chunk + 5000])
            points += len(lines)
            if period == "1h" and lines:  # the open data's district cells, from the rollups just written
                cells += write_cells(influx, writer, kind, lo, hi)
    return RollupReport(period, start, end, points, cells)


def _run_local_days(influx: InfluxQL, writer: LineWriter, start_ms: int, end_ms: int,
                    time_zone: str) -> RollupReport:
    """Daily rollups over the complete local days between start_ms and end_ms, one query per kind and day."""
    bounds = local_midnights(start_ms, end_ms, time_zone)
    # from the midnight of the day holding start_ms (as with a fixed offset) to the last day over by end_ms
    days = [(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi <= end_ms]
    points = 0
    for kind in contract.KINDS:
        last_seq: dict[str, int] = {}
        for lo, hi in days:
            lines = rollup_lines(kind, "1d", influx.series(rollup_query(kind, "1d", lo, hi, 0, whole_window=True)),
                                 last_seq)
            for chunk in range(0, len(lines), 5000):
                writer.write(lines[chunk:chunk + 5000])
            points += len(lines)
    first, last = (days[0][0], days[-1][1]) if days else (start_ms, start_ms)
    return RollupReport("1d", first, last, points)


def shard_duration(raw_retention: str) -> str:
    """A shard group no longer than the policy keeps data (InfluxDB insists)."""
    if raw_retention == "INF":
        return "7d"
    hours = int(raw_retention[:-1]) * {"h": 1, "d": 24, "w": 168}[raw_retention[-1]]
    return "1h" if hours < 48 else "1d" if hours <= 180 * 24 else "7d"


def ensure_retention(influx: InfluxQL, raw_retention: str) -> None:
    """Raw readings kept `raw_retention` (e.g. 90d) in the default policy; rollups for ever.
    Needs an admin account on an InfluxDB with authentication."""
    db = quote_ident(influx.db)
    influx.raw(f'ALTER RETENTION POLICY "{RAW_RP}" ON {db} DURATION {raw_retention} '
               f"SHARD DURATION {shard_duration(raw_retention)} DEFAULT", method="POST")
    policies = {row["name"] for row in influx.rows("SHOW RETENTION POLICIES")}
    if ROLLUP_RP not in policies:
        influx.raw(f'CREATE RETENTION POLICY "{ROLLUP_RP}" ON {db} DURATION INF REPLICATION 1', method="POST")


def retention_policies(influx: InfluxQL) -> dict[str, str]:
    """name -> duration, as InfluxDB reports them."""
    return {row["name"]: row["duration"] for row in influx.rows("SHOW RETENTION POLICIES")}
