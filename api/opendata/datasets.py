"""The dataset registry: which datasets exist, what each covers, its policy, and its rows for a period.

Datasets (ids are CKAN names, stable):
- `<kind>-<metric>` for every metric of the wire contract (edge/contract.py), e.g. `water-flow_lps`:
  aggregated datasets read the district x hour cells `city rollup` stores (`rollups.<kind>_district_1h`,
  ingest/cells.py; summed per request from the hourly rollups `rollups.<kind>_1h` where none are stored
  yet), kept for ever, and give one row per district and hour; raw datasets read the readings (kept as long as the raw
  retention) and give one row per reading.
- `complaints-daily`: citizens' complaints counted per local day, district and category.
Closed datasets are in `all_datasets` (for tests and staff) but not in `open_datasets`, and `get` refuses them.

Columns (`Dataset.columns`, the same for CSV, JSON and every other format):
- aggregated readings: time (ISO 8601 UTC, the hour's start), district, value (mean of the devices' hourly
  means), min, max, sum (of the devices' hourly means: total flow, vehicles, free beds), devices, readings;
- raw readings: time, district, sensor (the device's public name, set by an admin; empty if none: never the
  device id), value;
- complaints: date (local), district, category, received, answered, median_hours_to_answer.

Public functions (names kept stable):
- `all_datasets(profile)`, `open_datasets(profile)` -> list[Dataset]; `get(profile, dataset_id)` -> Dataset
  (raises `UnknownDataset` for an unknown id and `policy.Closed` for a closed one).
- `rows(services, dataset, start_ms, end_ms, now_ms=None)` -> Iterator[dict]: the policy-filtered rows of
  [start_ms, end_ms), in time order, read window by window (bounded memory whatever the span; at most
  MAX_SPAN_MS, else `PeriodError`).
- `period_bounds(profile, period)` -> (start_ms, end_ms): a local day `2026-11-05` or month `2026-11`.
- `Dataset.title(lang)`, `.description(lang)`, `.keywords(lang)`: texts in id and en (api/static/i18n).
"""

import datetime as dt
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from api.opendata import policy
from api.opendata.policy import MetricPolicy
from edge import contract
from ingest import cells
from telemetry_shared.city import CityProfile
from telemetry_shared.i18n import t
from telemetry_shared.influx import InfluxQL, quote_ident

if TYPE_CHECKING:
    from api.services import ApiServices

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_SPAN_MS = 366 * DAY_MS  # one request reads at most a year
AGGREGATED_WINDOW_MS = 31 * DAY_MS  # one rollup query: at most ~750 hours x districts rows
RAW_PAGE = 20_000  # one raw query: at most this many readings (of one day, in time order)
ROLLUP_RP = "rollups"  # ingest/rollup.py writes <kind>_1h there
COMPLAINTS_ID = "complaints-daily"
AGGREGATED_COLUMNS = ("time", "district", "value", "min", "max", "sum", "devices", "readings")
RAW_COLUMNS = ("time", "district", "sensor", "value")
COMPLAINT_COLUMNS = ("date", "district", "category", "received", "answered", "median_hours_to_answer")
PERIOD = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


class UnknownDataset(LookupError):
    """No dataset has this id."""


class PeriodError(ValueError):
    """A period that cannot be read: not a day or month, before 2000, in the future, or too long."""


@dataclass(frozen=True)
class Dataset:
    id: str
    source: Literal["readings", "complaints"]
    kind: str  # the contract's kind ("" for complaints)
    metric: str  # the contract's metric ("" for complaints)
    unit: str
    policy: MetricPolicy
    columns: tuple[str, ...]
    frequency: str  # ISO 8601 duration of one row's period: PT1H, P1D, or "" for raw readings

    def title(self, lang: str, city: str = "") -> str:
        if self.source == "complaints":
            return t("opendata.complaints.title", lang, city=city)
        return t(f"opendata.title.{self.policy.mode}", lang, metric=t(f"metric.{self.metric}", lang),
                 kind=t(f"kind.{self.kind}", lang), city=city)

    def description(self, lang: str, city: str = "") -> str:
        if self.source == "complaints":
            return t("opendata.complaints.description", lang, city=city, k=self.policy.k)
        return t(f"opendata.description.{self.policy.mode}", lang, metric=t(f"metric.{self.metric}", lang),
                 kind=t(f"kind.{self.kind}", lang), unit=self.unit or "-", city=city, k=self.policy.k,
                 delay_hours=self.policy.delay_ms // HOUR_MS)

    def keywords(self, lang: str) -> list[str]:
        if self.source == "complaints":
            return [t("opendata.keyword.complaints", lang), t("opendata.keyword.city", lang)]
        return [t(f"kind.{self.kind}", lang), t(f"metric.{self.metric}", lang), t("opendata.keyword.city", lang)]


def all_datasets(profile: CityProfile) -> list[Dataset]:
    out = []
    for kind, metrics in contract.KINDS.items():
        for metric, (unit, _lo, _hi) in metrics.items():
            rule = policy.policy_for(profile, kind, metric)
            raw = rule.mode == "raw"
            out.append(Dataset(id=f"{kind}-{metric}", source="readings", kind=kind, metric=metric, unit=unit,
                               policy=rule, columns=RAW_COLUMNS if raw else AGGREGATED_COLUMNS,
                               frequency="" if raw else "PT1H"))
    out.append(Dataset(id=COMPLAINTS_ID, source="complaints", kind="", metric="", unit="",
                       policy=policy.complaints_policy(profile), columns=COMPLAINT_COLUMNS, frequency="P1D"))
    return out


def open_datasets(profile: CityProfile) -> list[Dataset]:
    return [d for d in all_datasets(profile) if d.policy.open]


def get(profile: CityProfile, dataset_id: str) -> Dataset:
    for dataset in all_datasets(profile):
        if dataset.id == dataset_id:
            if not dataset.policy.open:
                raise policy.Closed(f"dataset {dataset_id!r} is not published")
            return dataset
    raise UnknownDataset(f"no dataset {dataset_id[:60]!r}")


def period_bounds(profile: CityProfile, period: str) -> tuple[int, int]:
    """[start_ms, end_ms) of a local day (YYYY-MM-DD) or month (YYYY-MM) in the city's zone."""
    match = PERIOD.match(period)
    if not match:
        raise PeriodError(f"{period[:20]!r} is not a day (YYYY-MM-DD) or a month (YYYY-MM)")
    year, month, day = int(match.group(1)), int(match.group(2)), match.group(3)
    if year < 2000:
        raise PeriodError("open data starts in 2000")
    if year > 9000:
        raise PeriodError(f"{period!r} has not begun yet")
    try:
        first = dt.date(year, month, int(day) if day else 1)
    except ValueError as exc:
        raise PeriodError(f"{period!r} is not a date: {exc}") from None
    after = first + dt.timedelta(days=1) if day else dt.date(year + month // 12, month % 12 + 1, 1)
    return _midnight_ms(first, profile), _midnight_ms(after, profile)


def _midnight_ms(day: dt.date, profile: CityProfile) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=profile.zone).timestamp() * 1000)


def iso_hour(t_ms: int) -> str:
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_time(t_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t_ms % 1000:03d}Z"


def rows(services: "ApiServices", dataset: Dataset, start_ms: int, end_ms: int,
         now_ms: int | None = None) -> Iterator[dict[str, Any]]:
    """The rows of [start_ms, end_ms) the policy publishes, in time order (see the module docstring)."""
    if end_ms - start_ms > MAX_SPAN_MS:
        raise PeriodError(f"at most {MAX_SPAN_MS // DAY_MS} days at once")
    now = now_ms if now_ms is not None else int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    end_ms = min(end_ms, policy.visible_until_ms(dataset.policy, now))
    if dataset.source == "complaints":
        source = _complaint_rows(services, start_ms, end_ms)
    elif dataset.policy.mode == "raw":
        source = _raw_rows(services, dataset, start_ms, end_ms)
    else:
        source = _aggregated_rows(services.influx, dataset, start_ms, end_ms)
    return policy.publish(dataset.policy, dataset.columns, source, now)


def _windows(start_ms: int, end_ms: int, size_ms: int) -> Iterator[tuple[int, int]]:
    lo = start_ms
    while lo < end_ms:
        yield lo, min(end_ms, lo + size_ms)
        lo += size_ms


def aggregated_query(dataset: Dataset, start_ms: int, end_ms: int) -> str:
    """The same cells computed by InfluxDB (GROUP BY time(1h), district): kept for comparison; influxd 1.6
    takes ~0.4 s for a month of it where the points query below takes a few ms."""
    m = dataset.metric
    mean, low, high, count = (quote_ident(f"{m}_{s}") for s in ("mean", "min", "max", "count"))
    return (f"SELECT mean({mean}) AS value, min({low}) AS min, max({high}) AS max, sum({mean}) AS sum,"
            f" count({mean}) AS devices, sum({count}) AS readings"
            f" FROM {quote_ident(ROLLUP_RP)}.{quote_ident(dataset.kind + '_1h')}"
            f" WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms"
            f' GROUP BY time(1h), "district" fill(none)')


def rollup_points_query(dataset: Dataset, start_ms: int, end_ms: int, limit: int, offset: int) -> str:
    """One metric's hourly rollup points (a row per device and hour), in time order, one page."""
    m = dataset.metric
    mean, low, high, count = (quote_ident(f"{m}_{s}") for s in ("mean", "min", "max", "count"))
    return (f'SELECT {mean} AS mean, {low} AS min, {high} AS max, {count} AS count, "district"'
            f" FROM {quote_ident(ROLLUP_RP)}.{quote_ident(dataset.kind + '_1h')}"
            f" WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms LIMIT {limit} OFFSET {offset}")


def _rollup_points(influx: InfluxQL, dataset: Dataset, start_ms: int, end_ms: int) -> Iterator[list]:
    """[time, mean, min, max, count, district] of every device-hour, in time order, page by page."""
    for lo, hi in _windows(start_ms, end_ms, AGGREGATED_WINDOW_MS):
        offset = 0
        while True:
            found = influx.series(rollup_points_query(dataset, lo, hi, RAW_PAGE, offset))
            values = found[0]["values"] if found else []
            yield from values
            if len(values) < RAW_PAGE:
                break
            offset += RAW_PAGE


def _cells(t_ms: int, cells: dict[str, tuple]) -> Iterator[dict[str, Any]]:
    """One hour's cells as rows, districts in order; a cell is (sum, devices, min, max, readings)."""
    time = iso_hour(t_ms)  # once an hour, not once a cell
    for district in sorted(cells):
        total, devices, low, high, readings = cells[district]
        yield {"t_ms": t_ms, "time": time, "district": district, "value": total / devices,
               "min": low, "max": high, "sum": total, "devices": devices, "readings": readings}


def _aggregated_rows(influx: InfluxQL, dataset: Dataset, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    """District x hour: each device's hourly mean counts once, so `devices` is how many devices reported in
    that district and hour. Read from the stored cells (ingest/cells.py, written by `city rollup`) from the
    hour they cover on, else summed here from the hourly rollup points (the same code). Every cell, whatever
    its device count, goes on to policy.publish, which alone decides what is published."""
    from ingest.rollup import retention_policies

    if start_ms >= end_ms or ROLLUP_RP not in retention_policies(influx):
        return  # no rollups yet (`city rollup` never ran): no rows rather than InfluxDB's error
    start_ms = start_ms // HOUR_MS * HOUR_MS  # whole hours
    covered = max(start_ms, min(end_ms, cells.covered_from(influx)))
    if start_ms < covered:
        yield from _summed_rows(influx, dataset, start_ms, covered)
    if covered < end_ms:
        yield from _stored_rows(influx, dataset, covered, end_ms)


def stored_cells_query(dataset: Dataset, start_ms: int, end_ms: int, limit: int, offset: int) -> str:
    """One metric's stored district x hour cells, in time order, one page."""
    m = dataset.metric
    total, low, high, devices, readings = (quote_ident(f"{m}_{s}") for s in ("sum", "min", "max", "devices",
                                                                              "readings"))
    return (f'SELECT {total} AS sum, {devices} AS devices, {low} AS min, {high} AS max, {readings} AS readings,'
            f' "district" FROM {quote_ident(ROLLUP_RP)}.{quote_ident(cells.measurement(dataset.kind))}'
            f" WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms LIMIT {limit} OFFSET {offset}")


def _stored_rows(influx: InfluxQL, dataset: Dataset, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    hour, found = None, {}
    for lo, hi in _windows(start_ms, end_ms, AGGREGATED_WINDOW_MS):
        offset = 0
        while True:
            answer = influx.series(stored_cells_query(dataset, lo, hi, RAW_PAGE, offset))
            values = answer[0]["values"] if answer else []
            for t_ms, total, devices, low, high, readings, district in values:
                if total is None or not devices:
                    continue
                if t_ms != hour:
                    if found:
                        yield from _cells(hour, found)
                    hour, found = t_ms, {}
                found[district or ""] = (total, devices, low, high, readings or 0)
            if len(values) < RAW_PAGE:
                break
            offset += RAW_PAGE
    if found:
        yield from _cells(hour, found)


def _summed_rows(influx: InfluxQL, dataset: Dataset, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    """The cells summed from the rollup points (influxd's own GROUP BY time is ~100 times slower); one
    hour's cells are held at a time."""
    hour, found = None, {}
    for t_ms, mean, low, high, count, district in _rollup_points(influx, dataset, start_ms, end_ms):
        if mean is None:
            continue
        if t_ms != hour:
            if found:
                yield from _cells(hour, {d: cells.finish(c) for d, c in found.items()})
            hour, found = t_ms, {}
        cells.accumulate(found, district or "", mean, low, high, count)
    if found:
        yield from _cells(hour, {d: cells.finish(c) for d, c in found.items()})


def _public_names(services: "ApiServices", kind: str) -> dict[str, str]:
    """device id -> the public name an admin gave it (the only name of a device the public sees)."""
    registry = services.registry
    with registry.lock:
        found = registry.db.execute("SELECT id, public_name FROM devices WHERE kind = ? AND public_name != ''",
                                    (kind,)).fetchall()
    return {row[0]: row[1] for row in found}


def _raw_rows(services: "ApiServices", dataset: Dataset, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    """Every reading in time order, a day at a time and at most RAW_PAGE rows a query (bounded memory)."""
    names = _public_names(services, dataset.kind)
    metric = quote_ident(dataset.metric)
    for lo, hi in _windows(start_ms, end_ms, DAY_MS):
        offset = 0
        while True:
            q = (f'SELECT {metric} AS value, "device", "district" FROM {quote_ident(dataset.kind)}'
                 f" WHERE time >= {int(lo)}ms AND time < {int(hi)}ms LIMIT {RAW_PAGE} OFFSET {offset}")
            found = services.influx.series(q)
            values = found[0]["values"] if found else []
            columns = found[0]["columns"] if found else []
            for values_row in values:
                row = dict(zip(columns, values_row, strict=True))
                if row["value"] is not None:
                    yield {"t_ms": row["time"], "time": iso_time(row["time"]), "district": row["district"] or "",
                           "sensor": names.get(row["device"] or "", ""), "value": row["value"]}
            if len(values) < RAW_PAGE:
                break
            offset += RAW_PAGE


def _complaint_rows(services: "ApiServices", start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    """Counts per local day, district and category. Only these columns are read from the table: no
    contact, text, address, position or photo ever enters a row."""
    profile = services.settings.city
    zone = profile.zone
    day = dt.datetime.fromtimestamp(start_ms / 1000, zone).date()
    while (day_start := _midnight_ms(day, profile)) < end_ms:
        day_end = _midnight_ms(day + dt.timedelta(days=1), profile)
        found = services.db.query(
            "SELECT district, service_code, answered_ms, requested_ms FROM complaints"
            " WHERE requested_ms >= ? AND requested_ms < ? ORDER BY district, service_code",
            (max(start_ms, day_start), min(end_ms, day_end)))
        cells: dict[tuple[str, str], list[float | None]] = {}
        for row in found:
            hours = (row[2] - row[3]) / HOUR_MS if row[2] is not None else None
            cells.setdefault((row[0], row[1]), []).append(hours)
        for (district, category), answers in sorted(cells.items()):
            done = [h for h in answers if h is not None]
            yield {"t_ms": day_start, "date": day.isoformat(), "district": district, "category": category,
                   "received": len(answers), "answered": len(done),
                   "median_hours_to_answer": round(statistics.median(done), 2) if done else None}
        day += dt.timedelta(days=1)
