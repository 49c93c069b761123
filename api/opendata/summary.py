"""The open summaries the public open-data page (/data, /data-terbuka) draws its charts from: water
supplied per day, minutes without power per district and day, traffic speed per district and hour,
complaints received and how fast they were answered, and hospital beds by class.

Every figure goes through the publication policy (api/opendata/policy.py) before it is summed or shown:
water and traffic are read as the policy-filtered rows of their open datasets (`datasets.rows`, the very
rows the downloads hold: district x hour cells of at least k devices, no hour in progress); minutes without
power are counted from the readings and published as district x day cells through `policy.publish` under
power.voltage_v's rule; complaints as city-wide day cells through the complaints' rule. A closed metric
gives nothing, and a city total is the sum of the published cells only (never of all of them, or a hidden
district could be read as the difference). Complaints give counts and durations only (no text, place or
contact is read); hospital beds are public per ward by design and are summed per class here. Ranges are
bounded (at most MAX_DAYS days), so no request is slow; answers are cached for a few seconds like the
other public routes."""

from datetime import date, datetime, timedelta, tzinfo
from statistics import median
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api import queries
from api.citizens.hospitals import BED_CLASSES, public_beds
from api.opendata import datasets, policy
from api.public_cache import PublicCache
from api.ratelimit import public_rate_limit
from api.routes.hospitals import _snapshot
from api.routes.public import POWERED_SHARE
from api.services import ApiServices, Services
from telemetry_shared.influx import InfluxRejected

router = APIRouter(prefix="/public/summary", tags=["open data"], dependencies=[Depends(public_rate_limit)],
                   responses={429: {"description": "too many requests; see Retry-After"}})

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MAX_DAYS = 31  # the page's charts; longer periods are the downloads' business
# figures over days are at most five minutes old: a crowd, or a client walking through every `days`, costs
# one computation per answer and period (the minute-level power count reads every reading of the range)
SUMMARY_CACHE_S = 300.0
PAST_DAY_CACHE_S = 3600.0  # a day that is over changes only by late readings (an edge backfilling its queue)
TrafficDays = Annotated[int, Query(ge=1, le=7, description="the last N local days (1..7)")]
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description=f"the last N local days, today included (1..{MAX_DAYS})")]


class WaterDay(BaseModel):
    day: str = Field(description="the local date, YYYY-MM-DD")
    start_ms: int
    supplied_m3: float | None = Field(description="null when no district's cell could be published")
    districts: int = Field(description="districts whose cells are in the total")


class WaterSummary(BaseModel):
    metric: str = "water.flow_lps"
    unit: str = "m3"
    data: list[WaterDay]


class PowerDay(BaseModel):
    day: str
    start_ms: int
    district: str
    minutes_without_power: int


class PowerSummary(BaseModel):
    metric: str = "power.voltage_v"
    threshold_v: float = Field(description="a district-minute whose median voltage is below this is without power")
    data: list[PowerDay]


class TrafficHour(BaseModel):
    start_ms: int
    district: str
    speed_kmh: float


class TrafficSummary(BaseModel):
    metric: str = "traffic.speed_kmh"
    unit: str = "km/h"
    data: list[TrafficHour]


class ComplaintDay(BaseModel):
    day: str
    start_ms: int
    received: int | None = Field(description="null: fewer than k that day, not published")
    answered: int | None = Field(description="of those received that day, how many have had a public answer")
    median_hours_to_answer: float | None


class ComplaintSummary(BaseModel):
    k: int = Field(description="a day is published when at least this many complaints were received")
    received: int
    answered: int
    median_hours_to_answer: float | None
    data: list[ComplaintDay]


class BedClass(BaseModel):
    bed_class: str
    capacity: int
    beds_free: int = Field(description="free beds in wards updated recently (stale wards count as none)")
    wards: int
    stale_wards: int


class BedSummary(BaseModel):
    as_of_ms: int
    data: list[BedClass]


# --- time: local days ---------------------------------------------------------------------------------


def _midnight(day: date, zone: tzinfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def _days(services: ApiServices, days: int) -> tuple[int, int, list[int]]:
    """(start, now, the local midnights) of the last `days` local days in the city's zone, today included
    (walked by wall-clock dates: a day with a zone change is not 24 h)."""
    zone = services.settings.city.zone
    now = queries.now_ms()
    today = datetime.fromtimestamp(now / 1000, zone).date()
    midnights = [_midnight(today - timedelta(days=n), zone) for n in range(days - 1, -1, -1)]
    return midnights[0], now, midnights


def _local_day(services: ApiServices, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, services.settings.city.zone).date().isoformat()


def _day_of(midnights: list[int], ms: int) -> int:
    """The local midnight a time belongs to."""
    return max((m for m in midnights if m <= ms), default=midnights[0])


def _t_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# --- figures: every one through the publication policy (api/opendata/policy.py) --------------------------


def _dataset_rows(services: ApiServices, dataset_id: str, start: int, end: int) -> list[dict[str, Any]]:
    """The policy-filtered district x hour rows of an open dataset (the same rows its downloads hold);
    none when the policy closes it."""
    try:
        dataset = datasets.get(services.settings.city, dataset_id)
    except policy.Closed:
        return []
    try:
        return list(datasets.rows(services, dataset, start, end))
    except InfluxRejected as exc:
        if "retention policy not found" in str(exc):  # `city rollup` has not run yet: no hourly figures yet
            return []
        raise


def water_summary(services: ApiServices, days: int) -> WaterSummary:
    """m³ per local day: the published district-hours of water-flow_lps, each the sum of its meters' hourly
    mean flow (L/s) x 3600 s; a cell whose meters flowed back on balance counts as none supplied."""
    start, end, midnights = _days(services, days)
    per_day: dict[int, float] = {}
    districts: dict[int, set[str]] = {}
    for row in _dataset_rows(services, "water-flow_lps", start, end):
        day = _day_of(midnights, _t_ms(row["time"]))
        per_day[day] = per_day.get(day, 0.0) + max(0.0, row["sum"] or 0.0) * 3600 / 1000
        districts.setdefault(day, set()).add(row["district"])
    data = [WaterDay(day=_local_day(services, m), start_ms=m, districts=len(districts.get(m, ())),
                     supplied_m3=round(per_day[m], 1) if m in per_day else None) for m in midnights]
    return WaterSummary(data=data)


def traffic_summary(services: ApiServices, days: int) -> TrafficSummary:
    """The published district-hours of traffic-speed_kmh (the mean of the sensors' hourly means)."""
    start, end, _ = _days(services, days)
    rows = _dataset_rows(services, "traffic-speed_kmh", start, end)
    return TrafficSummary(data=[TrafficHour(start_ms=_t_ms(r["time"]), district=r["district"],
                                            speed_kmh=round(r["value"], 1)) for r in rows if r["value"] is not None])


def _device_counts(services: ApiServices, start: int, end: int, bucket: str) -> dict[tuple[str, int], int]:
    """Power meters with at least one reading per (district, bucket start)."""
    q = (f'SELECT count("voltage_v") AS n FROM "power" WHERE time >= {start}ms AND time < {end}ms'
         f' GROUP BY time({bucket}), "district", "device" fill(none)')
    counts: dict[tuple[str, int], int] = {}
    for row in services.influx.rows(q):
        if row["n"]:
            counts[(row["district"], row["time"])] = counts.get((row["district"], row["time"]), 0) + 1
    return counts


def _power_cells(services: ApiServices, start: int, end: int, threshold: float) -> list[dict[str, Any]]:
    """The district cells of one local day [start, end): minutes without power and meters reporting."""
    if end <= start:
        return []
    bucket = f"{DAY_MS}ms, {start % DAY_MS}ms"  # one bucket from the local midnight
    inner = (f'SELECT median("voltage_v") AS v FROM "power" WHERE time >= {start}ms AND time < {end}ms'
             ' GROUP BY time(1m), "district" fill(none)')
    # the outer query needs the time range again (else InfluxQL buckets from the epoch)
    q = (f'SELECT count("v") AS minutes FROM ({inner}) WHERE "v" < {float(threshold)}'
         f' AND time >= {start}ms AND time < {end}ms GROUP BY time({bucket}), "district"')
    minutes = {r["district"]: int(r["minutes"] or 0) for r in services.influx.rows(q)}
    return [{"t_ms": start, "district": d, "minutes_without_power": minutes.get(d, 0), "devices": n}
            for (d, _t), n in sorted(_device_counts(services, start, end, bucket).items())]


def power_summary(services: ApiServices, days: int, past_days: PublicCache | None = None) -> PowerSummary:
    """Minutes without power per district and local day: a district-minute whose median voltage is below
    POWERED_SHARE of the nominal (most of its meters see no supply); minutes without a reading are unknown,
    not counted. Read from the readings (an hourly mean cannot tell minutes), then published as district x
    day cells under power.voltage_v's policy: closed gives nothing, a cell of fewer than k meters is left
    out, and only whole hours are read (as the policy publishes no hour in progress). A day that is over is
    counted once and kept in `past_days` (an hour), so a refresh reads only today's readings."""
    rule = policy.policy_for(services.settings.city, "power", "voltage_v")
    threshold = POWERED_SHARE * services.settings.city.grid.nominal_voltage_v
    if not rule.open:
        return PowerSummary(threshold_v=threshold, data=[])
    _start, now, midnights = _days(services, days)
    end = policy.visible_until_ms(rule, now)
    cells: list[dict[str, Any]] = []
    for day, after in zip(midnights, [*midnights[1:], end], strict=True):
        def count(lo: int = day, hi: int = min(after, end)) -> list[dict[str, Any]]:
            return _power_cells(services, lo, hi, threshold)
        over = after <= end and day != midnights[-1]
        cells += past_days.get(f"power.{day}.{threshold}", count) if past_days is not None and over else count()
    published = policy.publish(rule, ("t_ms", "district", "minutes_without_power"), cells, now)
    data = [PowerDay(day=_local_day(services, c["t_ms"]), start_ms=c["t_ms"], district=c["district"],
                     minutes_without_power=c["minutes_without_power"]) for c in published]
    return PowerSummary(threshold_v=threshold, data=data)


def _hours(hours: list[float]) -> float | None:
    return round(median(hours), 1) if hours else None


def complaint_summary(services: ApiServices, days: int) -> ComplaintSummary:
    """Counts and durations per local day for the whole city, published under the complaints' policy
    (a day with fewer than k complaints is left out, as a district's cell is in the complaints-daily
    dataset). Only three columns are read: nothing personal can leave by mistake. The time to answer is
    from filing to the first public answer (answered_ms)."""
    rule = policy.complaints_policy(services.settings.city)
    start, now, midnights = _days(services, days)
    found = services.db.query("SELECT requested_ms, answered_ms FROM complaints"
                              " WHERE requested_ms >= ? AND requested_ms < ?", (start, now + 1))
    per_day: dict[int, list[float | None]] = {m: [] for m in midnights}
    for requested, answered in found:
        per_day[_day_of(midnights, requested)].append(None if answered is None else (answered - requested) / HOUR_MS)
    cells = [{"t_ms": m, "received": len(v), "answered": [h for h in v if h is not None]}
             for m, v in per_day.items() if v]
    published = {c["t_ms"]: c for c in policy.publish(rule, ("t_ms", "received", "answered"), cells, now)}
    data, everything, received = [], [], 0
    for m in midnights:
        cell = published.get(m)
        answered = cell["answered"] if cell else []
        everything += answered
        received += cell["received"] if cell else 0
        data.append(ComplaintDay(day=_local_day(services, m), start_ms=m, received=cell["received"] if cell else None,
                                 answered=len(answered) if cell else None, median_hours_to_answer=_hours(answered)))
    return ComplaintSummary(received=received, answered=len(everything), median_hours_to_answer=_hours(everything),
                            data=data, k=rule.k)


def bed_summary(services: ApiServices) -> BedSummary:
    """Built from the public free-bed list itself (free beds per ward are public by design), so it can hold
    nothing that list does not."""
    hospitals, wards, duty = services.public.get("beds", lambda: _snapshot(services))
    now = queries.now_ms()
    listed = public_beds(hospitals, wards, duty, now, int(services.settings.api_hospital_stale_after_s * 1000))
    classes: dict[str, BedClass] = {}
    for hospital in listed:
        for ward in hospital.wards:
            row = classes.setdefault(ward.bed_class, BedClass(bed_class=ward.bed_class, capacity=0, beds_free=0,
                                                              wards=0, stale_wards=0))
            row.capacity += ward.capacity
            row.beds_free += ward.beds_free or 0
            row.wards += 1
            row.stale_wards += ward.stale
    return BedSummary(as_of_ms=now, data=[classes[c] for c in BED_CLASSES if c in classes])


def _summary_cache(request: Request) -> PublicCache:
    """One cache per app for the figures over days (the beds use the shared 10-second one)."""
    state = request.app.state
    if not hasattr(state, "summary_cache"):
        state.summary_cache = PublicCache(SUMMARY_CACHE_S)
    return state.summary_cache


def _past_days(request: Request) -> PublicCache:
    """Power cells of local days that are over: counted once an hour at most."""
    state = request.app.state
    if not hasattr(state, "past_days_cache"):
        state.past_days_cache = PublicCache(PAST_DAY_CACHE_S)
    return state.past_days_cache


SummaryCache = Annotated[PublicCache, Depends(_summary_cache)]
PastDays = Annotated[PublicCache, Depends(_past_days)]


@router.get("/water", summary="Water supplied per local day (m³), city total over the districts the policy publishes")
def water(services: Services, cache: SummaryCache, days: Days = 14) -> WaterSummary:
    return cache.get(f"water.{days}", lambda: water_summary(services, days))


@router.get("/power", summary="Minutes without power per district and local day")
def power(services: Services, cache: SummaryCache, past_days: PastDays, days: Days = 14) -> PowerSummary:
    return cache.get(f"power.{days}", lambda: power_summary(services, days, past_days))


@router.get("/traffic", summary="Mean traffic speed per district and hour")
def traffic(services: Services, cache: SummaryCache, days: TrafficDays = 1) -> TrafficSummary:
    return cache.get(f"traffic.{days}", lambda: traffic_summary(services, days))


@router.get("/complaints", summary="Complaints received per local day and how fast they were answered")
def complaints(services: Services, cache: SummaryCache, days: Days = 30) -> ComplaintSummary:
    return cache.get(f"complaints.{days}", lambda: complaint_summary(services, days))


@router.get("/beds", summary="Hospital beds per class: capacity and free beds now")
def beds(services: Services) -> BedSummary:
    return services.public.get("summary.beds", lambda: bed_summary(services))
