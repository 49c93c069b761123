"""Public figures, no login, rate limited per client address.

City-level figures only, computed from the readings: water supplied today,
which districts have power, the traffic state per district (hospital free
beds are in api/routes/hospitals.py). Built only from fields made for the
public (a district slug, figures): never a device id, a registry note, a raw
reading series, or anything from the configuration. Answers are cached for a few seconds, so public
load cannot reach InfluxDB at the rate it arrives.
"""

from datetime import datetime, timedelta, timezone
from statistics import median
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api import queries
from api.ratelimit import public_rate_limit
from api.services import ApiServices, Services

router = APIRouter(prefix="/public", tags=["public"], dependencies=[Depends(public_rate_limit)],
                   responses={429: {"description": "too many requests; see Retry-After"}})

POWERED_SHARE = 0.8  # below 80 % of the profile's nominal voltage a supply is out, not merely low
RECENT_MS = 15 * 60 * 1000
FREE_FLOW_KMH = 40.0
SLOW_KMH = 20.0


class DistrictFigures(BaseModel):
    district: str
    power: str  # on, outage, unknown
    traffic: str  # free, slow, congested, unknown
    mean_speed_kmh: float | None


class CityFigures(BaseModel):
    city: str
    as_of_ms: int
    day_start_ms: int
    water_supplied_today_m3: float | None
    districts: list[DistrictFigures]


def day_start_ms(services: ApiServices, now: int) -> int:
    """The last local midnight: in the city's zone (daylight saving included), or the fixed
    CITY_UTC_OFFSET_HOURS when set."""
    settings = services.settings
    fixed = timezone(timedelta(hours=settings.utc_offset_hours))
    zone = ZoneInfo(settings.local_zone) if settings.local_zone else fixed
    local = datetime.fromtimestamp(now / 1000, zone)
    # the wall clock's midnight, then its own offset (a zone's midnight may have another offset than now)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return int(midnight.timestamp() * 1000)


def _power_state(volts: list[float], nominal_v: float) -> str:
    if not volts:
        return "unknown"
    return "on" if sum(v >= POWERED_SHARE * nominal_v for v in volts) * 2 >= len(volts) else "outage"


def _traffic_state(speed: float | None) -> str:
    if speed is None:
        return "unknown"
    return "free" if speed >= FREE_FLOW_KMH else "slow" if speed >= SLOW_KMH else "congested"


def city_figures(services: ApiServices) -> CityFigures:
    now = queries.now_ms()
    start = day_start_ms(services, now)
    litres = queries.integral_per_device(services.influx, "water", "flow_lps", start, now + 1)
    # negative flow is water flowing back into the network: not supplied
    supplied = round(sum(max(0.0, v) for v in litres.values()) / 1000, 1) if litres else None
    volts: dict[str, list[float]] = {}
    for row in queries.per_device_last(services.influx, "power", "voltage_v", now - RECENT_MS):
        volts.setdefault(row["district"], []).append(row["value"])
    speeds: dict[str, list[float]] = {}
    for row in queries.per_device_last(services.influx, "traffic", "speed_kmh", now - RECENT_MS):
        speeds.setdefault(row["district"], []).append(row["value"])
    profile = services.settings.city
    districts = sorted(set(profile.slugs) | set(volts) | set(speeds))
    rows = []
    for district in districts:
        speed = round(median(speeds[district]), 1) if speeds.get(district) else None
        power = _power_state(volts.get(district, []), profile.grid.nominal_voltage_v)
        rows.append(DistrictFigures(district=district, power=power,
                                    traffic=_traffic_state(speed), mean_speed_kmh=speed))
    return CityFigures(city=services.settings.city_name, as_of_ms=now, day_start_ms=start,
                       water_supplied_today_m3=supplied, districts=rows)


@router.get("/city", summary="City figures: water supplied today, power and traffic per district")
def city(services: Services) -> CityFigures:
    return services.public.get("city", lambda: city_figures(services))
