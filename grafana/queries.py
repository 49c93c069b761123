"""InfluxQL for the dashboards, written once so every panel filters the same way.

Every query is limited by Grafana's `$timeFilter` and, where the data has
those tags, by the `$district` and `$device` template variables (regex
matches, so the variables' "All" value `.*` matches every series).
"""

import re

from edge import contract
from ingest.rollup import ROLLUP_RP, local_day_offset
from telemetry_shared.influx import quote_ident
from telemetry_shared.settings import get_settings

DEVICE_MEASUREMENTS = "/^(" + "|".join(sorted(contract.KINDS)) + ")$/"  # every kind at once
ROLLUPS = quote_ident(ROLLUP_RP)  # where ingest/rollup.py writes <kind>_1h and <kind>_1d, kept for ever
# One bucket per local day of the city profile's time zone (at UTC+7 local midnight is 17:00 UTC). InfluxQL's
# buckets have one fixed offset, the zone's standard one: in a zone with daylight saving these days are an
# hour off in summer (the daily rollups follow the zone's real days).
NIGHT_BUCKET = f"GROUP BY time(1d, {local_day_offset(get_settings().utc_offset_hours)})"


# Backfilled history: readings a device kept while offline and sent late, stored with the field hist=true
# (a field, not a tag, so InfluxQL cannot GROUP BY it: a panel asks for them with this condition). A point
# stored before ingest wrote `hist` has no such field, so it is never counted as backfill.
BACKFILLED = '"hist" = true'
BACKFILLED_SUFFIX = " (backfilled)"  # the series name suffix of a readings panel's backfilled dots


def where(district: bool = True, device: bool = True, extra: str = "") -> str:
    """The WHERE clause: time range, template variables, and an optional extra condition."""
    parts = ["$timeFilter"]
    if district:
        parts.append('"district" =~ /^$district$/')
    if device:
        parts.append('"device" =~ /^$device$/')
    if extra:
        parts.append(extra)
    return "WHERE " + " AND ".join(parts)


def per_device(kind: str, metric: str, agg: str = "mean", extra: str = "") -> str:
    """One series per device: `agg` of a metric in each Grafana interval."""
    return (f"SELECT {agg}({quote_ident(metric)}) FROM {quote_ident(kind)} {where(extra=extra)} "
            f'GROUP BY time($__interval), "device" fill(null)')


def per_district(kind: str, metric: str, inner: str = "mean", outer: str = "mean", device: bool = True) -> str:
    """One series per district: `outer` across devices of each device's `inner` value.

    A subquery first reduces each device to one value per interval, so a
    district with many devices reporting often does not outweigh one with few.
    `device=False` on a dashboard without a device variable (the overview).
    """
    sub = (f"SELECT {inner}({quote_ident(metric)}) AS v FROM {quote_ident(kind)} {where(device=device)} "
           f'GROUP BY time($__interval), "device", "district"')
    return f'SELECT {outer}("v") FROM ({sub}) WHERE $timeFilter GROUP BY time($__interval), "district" fill(null)'


def rollup(kind: str, period: str, fields: list[str], outer: str = "") -> str:
    """Per-device series from the rollups (`<kind>_1h`/`<kind>_1d`, fields `<metric>_min/_mean/_max`).

    With `outer` (e.g. min), one value per local day of each field; without, the stored values."""
    source = f"{ROLLUPS}.{quote_ident(f'{kind}_{period}')}"
    if outer:
        selected = ", ".join(f"{outer}({quote_ident(f)}) AS {quote_ident(f)}" for f in fields)
        return f'SELECT {selected} FROM {source} {where()} {NIGHT_BUCKET}, "device" fill(none)'
    selected = ", ".join(quote_ident(f) for f in fields)
    return f'SELECT {selected} FROM {source} {where()} GROUP BY "device"'


def backfilled(measurement: str, by: str = "device", device: bool = True) -> str:
    """Backfilled readings per interval (samples stored with hist=true), per `by` tag: an explicit 0 in the
    intervals around them, nothing at all where no device was ever offline (the panel says 0)."""
    return (f'SELECT count("seq") FROM {measurement} {where(device=device, extra=BACKFILLED)} '
            f"GROUP BY time($__interval), {quote_ident(by)} fill(0)")


def count_under(kind: str, metric: str, limit: float, by: str = "district") -> str:
    """How many readings per interval are at or under a limit (an outage, a congested road), with an
    explicit 0 where none are: InfluxQL has no CASE, so each reading becomes 1 or 0 as
    1 - ceil((value - limit) / 1e9) (values are far below 1e9 from the limit) and the ones are summed;
    a WHERE on the value would return nothing at all on a healthy city instead of 0."""
    m = quote_ident(metric)
    sub = f"SELECT 1 - ceil(({m} - {limit!r}) / 1000000000) AS under FROM {quote_ident(kind)} {where()}"
    return f'SELECT sum("under") FROM ({sub}) WHERE $timeFilter GROUP BY time($__interval), {quote_ident(by)} fill(0)'


def mean_write_seconds() -> str:
    """Mean InfluxDB write time per interval, per worker: the growth of the cumulative write time over the
    growth of the write count (the worker's `write_seconds_max` is the worst since it started, and never falls)."""
    sub = ('SELECT non_negative_difference(max("write_seconds_sum")) AS s, non_negative_difference(max("writes")) '
           'AS n FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval), "worker"')
    return f'SELECT "s" / "n" FROM ({sub}) WHERE $timeFilter AND "n" > 0 GROUP BY "worker"'


def incidents(extra: str = "") -> str:
    """Alert incidents (distinct ids), not alert messages: one incident sends a message at every change."""
    return f'SELECT count(distinct("id")) FROM "alerts" {where(device=False, extra=extra)}'.rstrip()


def latest_per_device(measurement: str, fields: list[str], device: bool = True) -> str:
    """A table row per device with its latest values (and the time of them: last seen)."""
    selected = ", ".join(f"last({quote_ident(f)}) AS {quote_ident(f)}" for f in fields)
    return f'SELECT {selected} FROM {measurement} {where(device=device)} GROUP BY "device"'


def counter_rate(field: str) -> str:
    """Per-second rate of an ingest counter, per worker (counters are cumulative)."""
    return (f"SELECT non_negative_derivative(max({quote_ident(field)}), 1s) FROM \"ingest_stats\" "
            f'WHERE $timeFilter GROUP BY time($__interval), "worker" fill(null)')


def counter_increase(field: str, by_worker: bool = True) -> str:
    """How much a cumulative counter grew in each interval."""
    group = ', "worker"' if by_worker else ""
    return (f"SELECT non_negative_difference(max({field})) FROM \"ingest_stats\" "
            f"WHERE $timeFilter GROUP BY time($__interval){group} fill(null)")


def fill_variables(query: str, values: dict[str, str]) -> str:
    """Replace `$name` (longest names first) as Grafana would, for testing a query outside Grafana."""
    for name in sorted(values, key=len, reverse=True):
        query = query.replace("$" + name, values[name])
    unfilled = re.findall(r"\$\w+", query)
    if unfilled:
        raise ValueError(f"variables left unfilled: {sorted(set(unfilled))}")
    return query


SPAN_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


def panel_span_ms(panel: dict, dashboard_span_ms: int) -> int:
    """The range Grafana queries a panel over: its own `timeFrom` (e.g. "90d") when it has one, else the
    dashboard's. For testing a query outside Grafana: a panel over daily rollups has nothing in the last
    day or so (a day's point is stamped at its start, and only complete days are rolled up)."""
    own = panel.get("timeFrom")
    if not own:
        return dashboard_span_ms
    match = re.fullmatch(r"([1-9][0-9]*)([mhdw])", own)
    if match is None:
        raise ValueError(f"panel {panel.get('title')!r}: timeFrom {own!r} is not like 90d")
    return int(match[1]) * SPAN_UNITS_MS[match[2]]


WATER_BALANCE = '"water_balance"'  # the daily IWA balance per DMA (analytics/waterdata.py, city water-balance --write)


def per_dma(field: str) -> str:
    """One series per DMA: a field of the daily water balance, one value per local day."""
    return (f"SELECT mean({quote_ident(field)}) FROM {WATER_BALANCE} {where(device=False)} "
            f'{NIGHT_BUCKET}, "dma" fill(none)')


def dma_ranking() -> str:
    """A table row per DMA: its real losses, NRW and system input over the range."""
    return ('SELECT sum("real_losses_m3") AS "real losses m3", sum("nrw_m3") AS "NRW m3", '
            f'sum("system_input_m3") AS "system input m3" FROM {WATER_BALANCE} {where(device=False)} GROUP BY "dma"')
