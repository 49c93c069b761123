"""The open summaries the public open-data page (/data, /data-terbuka) draws its charts from: water
supplied per day, minutes without power per district and day, traffic speed per district and hour,
complaints received and how fast they were answered, and hospital beds by class.

Every figure from the readings is first a district x period cell with the number of devices behind it,
and every cell goes through the publication policy (`_published`, the one call site) before it is
summed or shown: a closed metric gives nothing, a cell with fewer than k devices is left out, and a
city total is the sum of the cells that were published (never all of them, or a hidden district
could be read as the difference). Complaints give counts and durations only (no text, no place
finer than a district, no contact); hospital beds are already public per ward and are summed per
class here. Ranges are bounded (at most MAX_DAYS days), so no request is slow; answers are cached for
a few seconds like the other public routes."""

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from statistics import median
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api import queries
from api.citizens.hospitals import BED_CLASSES, public_beds
from api.ratelimit import public_rate_limit
from api.routes.hospitals import _snapshot
from api.routes.public import POWERED_SHARE, day_start_ms
from api.services import ApiServices, Services
from telemetry_shared.influx import quote_ident

router = APIRouter(prefix="/public/summary", tags=["open data"], dependencies=[Depends(public_rate_limit)],
                   responses={429: {"description": "too many requests; see Retry-After"}})

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
PROVISIONAL_K = 3
MAX_DAYS = 31  # the page's charts; longer periods are the downloads' business
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description=f"the last N local days, today included (1..{MAX_DAYS})")]


class Cell(BaseModel):
    """One district x period figure and how many devices stand behind it."""

    district: str
    start_ms: int
    value: float
    devices: int


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
    received: int
    answered: int = Field(description="of those received that day, how many are closed with an answer")
    median_hours_to_answer: float | None


class ComplaintSummary(BaseModel):
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


def _zone(services: ApiServices) -> timezone | ZoneInfo:
    settings = services.settings
    fixed = timezone(timedelta(hours=settings.utc_offset_hours))
    return ZoneInfo(settings.local_zone) if settings.local_zone else fixed


def _days(services: ApiServices, days: int) -> tuple[int, int, list[int]]:
    """(start, end, the local midnights) of the last `days` local days, today included."""
    now = queries.now_ms()
    today = day_start_ms(services, now)
    zone = _zone(services)
    midnights = [today]
    for _ in range(days - 1):  # walk back by wall-clock days: a day with a zone change is not 24 h
        local = datetime.fromtimestamp(midnights[0] / 1000, zone) - timedelta(days=1)
        midnights.insert(0, int(datetime(local.year, local.month, local.day, tzinfo=zone).timestamp() * 1000))
    return midnights[0], now + 1, midnights


def _local_day(services: ApiServices, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, _zone(services)).date().isoformat()


def _day_of(midnights: list[int], ms: int) -> int:
    """The local midnight a time belongs to."""
    return max((m for m in midnights if m <= ms), default=midnights[0])


# --- the policy's one call site -----------------------------------------------------------------------


def _published(services: ApiServices, kind: str, metric: str, cells: Iterable[Cell]) -> list[Cell]:
    """The cells the publication policy lets out (a closed metric: none; otherwise only cells with at least k
    devices). TEMPORARY until api/opendata/policy.py is on main: k = PROVISIONAL_K for every metric."""
    return [c for c in cells if c.devices >= PROVISIONAL_K]


# --- readings -> cells ----------------------------------------------------------------------------------


def _device_counts(services: ApiServices, kind: str, metric: str, start: int, end: int,
                   bucket: str) -> dict[tuple[str, int], int]:
    """Devices with at least one reading of the metric per (district, bucket start)."""
    m = quote_ident(metric)
    q = (f"SELECT count({m}) AS n FROM {quote_ident(kind)} WHERE time >= {start}ms AND time < {end}ms"
         f' GROUP BY time({bucket}), "district", "device" fill(none)')
    counts: dict[tuple[str, int], int] = {}
    for row in services.influx.rows(q):
        if row["n"]:
            key = (row["district"], row["time"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def _offset(midnight_ms: int, bucket_ms: int) -> str:
    """InfluxQL's GROUP BY time offset that puts bucket edges on local midnights."""
    return f"{midnight_ms % bucket_ms}ms"


def water_cells(services: ApiServices, start: int, end: int) -> list[Cell]:
    """m³ supplied per district and local day: each device's integral of flow, backflow (negative) not counted."""
    bucket = f"{DAY_MS}ms, {_offset(start, DAY_MS)}"
    q = (f'SELECT integral("flow_lps", 1s) AS litres FROM "water" WHERE time >= {start}ms AND time < {end}ms'
         f' GROUP BY time({bucket}), "district", "device" fill(none)')
    totals: dict[tuple[str, int], list[float]] = {}
    for row in services.influx.rows(q):
        if row["litres"] is not None:
            totals.setdefault((row["district"], row["time"]), []).append(max(0.0, row["litres"]))
    return [Cell(district=d, start_ms=t, value=sum(v) / 1000, devices=len(v)) for (d, t), v in sorted(totals.items())]


def power_cells(services: ApiServices, start: int, end: int) -> list[Cell]:
    """Minutes without power per district and local day: a district-minute whose median voltage is below
    POWERED_SHARE of the nominal (most of its meters see no supply). Minutes with no reading are unknown, not
    counted."""
    threshold = POWERED_SHARE * services.settings.city.grid.nominal_voltage_v
    bucket = f"{DAY_MS}ms, {_offset(start, DAY_MS)}"
    inner = (f'SELECT median("voltage_v") AS v FROM "power" WHERE time >= {start}ms AND time < {end}ms'
             ' GROUP BY time(1m), "district" fill(none)')
    q = (f'SELECT count("v") AS minutes FROM ({inner}) WHERE "v" < {float(threshold)}'
         f' AND time >= {start}ms AND time < {end}ms GROUP BY time({bucket}), "district"')
    # the outer query needs the time range again (else InfluxQL buckets from the epoch)
    minutes = {(r["district"], r["time"]): int(r["minutes"] or 0) for r in services.influx.rows(q)}
    devices = _device_counts(services, "power", "voltage_v", start, end, bucket)
    cells = []
    for (district, t), n in sorted(devices.items()):
        cells.append(Cell(district=district, start_ms=t, value=minutes.get((district, t), 0), devices=n))
    return cells


def traffic_cells(services: ApiServices, start: int, end: int) -> list[Cell]:
    """Mean speed per district and hour."""
    q = (f'SELECT mean("speed_kmh") AS v FROM "traffic" WHERE time >= {start}ms AND time < {end}ms'
         ' GROUP BY time(1h), "district" fill(none)')
    means = {(r["district"], r["time"]): r["v"] for r in services.influx.rows(q) if r["v"] is not None}
    devices = _device_counts(services, "traffic", "speed_kmh", start, end, "1h")
    return [Cell(district=d, start_ms=t, value=v, devices=devices.get((d, t), 0))
            for (d, t), v in sorted(means.items())]


# --- the answers ----------------------------------------------------------------------------------------


def water_summary(services: ApiServices, days: int) -> WaterSummary:
    start, end, midnights = _days(services, days)
    cells = _published(services, "water", "flow_lps", water_cells(services, start, end))
    by_day: dict[int, list[Cell]] = {}
    for cell in cells:
        by_day.setdefault(_day_of(midnights, cell.start_ms), []).append(cell)
    data = [WaterDay(day=_local_day(services, m), start_ms=m, districts=len(by_day.get(m, [])),
                     supplied_m3=round(sum(c.value for c in by_day[m]), 1) if m in by_day else None)
            for m in midnights]
    return WaterSummary(data=data)


def power_summary(services: ApiServices, days: int) -> PowerSummary:
    start, end, midnights = _days(services, days)
    cells = _published(services, "power", "voltage_v", power_cells(services, start, end))
    data = [PowerDay(day=_local_day(services, c.start_ms), start_ms=_day_of(midnights, c.start_ms),
                     district=c.district, minutes_without_power=int(c.value)) for c in cells]
    threshold = POWERED_SHARE * services.settings.city.grid.nominal_voltage_v
    return PowerSummary(threshold_v=threshold, data=data)


def traffic_summary(services: ApiServices, days: int) -> TrafficSummary:
    start, end, _ = _days(services, days)
    cells = _published(services, "traffic", "speed_kmh", traffic_cells(services, start, end))
    return TrafficSummary(data=[TrafficHour(start_ms=c.start_ms, district=c.district, speed_kmh=round(c.value, 1))
                                for c in cells])


def _hours(durations_ms: list[int]) -> float | None:
    return round(median(durations_ms) / HOUR_MS, 1) if durations_ms else None


def complaint_summary(services: ApiServices, days: int) -> ComplaintSummary:
    """Counts and durations only. 'Answered' is a complaint closed with the city's answer; the time to
    answer is from filing to its last update while closed (the store keeps no separate answer time)."""
    start, end, midnights = _days(services, days)
    with services.db.lock:  # only these columns are read: nothing personal can leave by mistake
        rows = services.db.conn.execute(
            "SELECT requested_ms, status, updated_ms FROM complaints WHERE requested_ms >= ? AND requested_ms < ?",
            (start, end)).fetchall()
    per_day: dict[int, list[tuple[str, int]]] = {m: [] for m in midnights}
    for requested, status, updated in rows:
        per_day[_day_of(midnights, requested)].append((status, updated - requested))
    data, everything = [], []
    for m in midnights:
        answered = [d for status, d in per_day[m] if status == "closed"]
        everything += answered
        data.append(ComplaintDay(day=_local_day(services, m), start_ms=m, received=len(per_day[m]),
                                 answered=len(answered), median_hours_to_answer=_hours(answered)))
    return ComplaintSummary(received=len(rows), answered=len(everything),
                            median_hours_to_answer=_hours(everything), data=data)


def bed_summary(services: ApiServices) -> BedSummary:
    """Built from the public free-bed list itself, so it can hold nothing that list does not."""
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


@router.get("/water", summary="Water supplied per local day (m³), city total over the districts the policy publishes")
def water(services: Services, days: Days = 14) -> WaterSummary:
    return services.public.get(f"summary.water.{days}", lambda: water_summary(services, days))


@router.get("/power", summary="Minutes without power per district and local day")
def power(services: Services, days: Days = 14) -> PowerSummary:
    return services.public.get(f"summary.power.{days}", lambda: power_summary(services, days))


@router.get("/traffic", summary="Mean traffic speed per district and hour")
def traffic(services: Services, days: Annotated[int, Query(ge=1, le=7, description="the last N local days (1..7)")]
            = 1) -> TrafficSummary:
    return services.public.get(f"summary.traffic.{days}", lambda: traffic_summary(services, days))


@router.get("/complaints", summary="Complaints received per local day and how fast they were answered")
def complaints(services: Services, days: Days = 30) -> ComplaintSummary:
    return services.public.get(f"summary.complaints.{days}", lambda: complaint_summary(services, days))


@router.get("/beds", summary="Hospital beds per class: capacity and free beds now")
def beds(services: Services) -> BedSummary:
    return services.public.get("summary.beds", lambda: bed_summary(services))
