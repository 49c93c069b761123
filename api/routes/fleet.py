"""The fleet as the control room sees it: every device's state for the map, the fleet counted by
district (the map of a city of 100,000 devices), and the devices that have gone silent.

Every answer is read from the registry in SQL a page at a time (telemetry_shared/registry.py
fleet_page, fleet_counts): a page of 1,000 costs the same whatever the size of the fleet."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api.alerts.store import SEVERITIES, rank
from api.auth import AnyRole
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.queries import now_ms
from api.services import ApiServices, Services
from telemetry_shared.registry import STATES, Device

router = APIRouter(prefix="/fleet", tags=["fleet"], responses=AUTH_RESPONSES)

_DEGREES = r"-?\d{1,3}(\.\d{1,12})?"
BBOX_PATTERN = rf"^{_DEGREES}(,{_DEGREES}){{3}}$"  # four decimal numbers (no exponent, NaN or infinity)
DISTRICT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


class FleetDevice(BaseModel):
    id: str
    kind: str
    district: str
    lat: float | None
    lon: float | None
    state: str  # provisioned, active, silent (registry or by last_seen_ms), retired
    last_seen_ms: int | None
    silent_for_s: float | None
    alert_severity: str | None  # the worst open alert on it
    maintenance_until_ms: int | None = None  # under maintenance (out of service) until then


class DistrictFleet(BaseModel):
    district: str
    lat: float | None  # a point inside the district's boundary, for its marker (None: not in the city profile)
    lon: float | None
    devices: int  # every registered device but the retired
    states: dict[str, int]  # devices by shown state: provisioned, active, silent, retired
    maintenance: int  # devices under maintenance now
    alert_severity: str | None  # the worst open active alert in the district
    alerts: dict[str, int]  # open active alerts by severity: critical, warning, info


def _state(device: Device, now: int, silent_after_ms: int) -> tuple[str, float | None]:
    if device.last_seen_ms is None:
        return device.state, None
    quiet_ms = now - device.last_seen_ms
    if device.state in ("active", "silent") and quiet_ms > silent_after_ms:
        return "silent", quiet_ms / 1000
    return device.state, (quiet_ms / 1000 if device.state == "silent" else None)


def _silent_after_ms(services: ApiServices) -> int:
    return int(services.settings.api_silent_after_s * 1000)


def _shown(services: ApiServices, devices: list[Device], now: int) -> list[FleetDevice]:
    """One page of devices with their shown state, worst open alert and maintenance."""
    ids = {d.id for d in devices}
    worst: dict[str, str] = {}
    for device, _, severity in services.alerts.store.open_severities():
        if device in ids and (device not in worst or rank(severity) > rank(worst[device])):
            worst[device] = severity
    maintenance = services.alerts.alarms.maintenance.active(now)
    silent_after_ms = _silent_after_ms(services)
    out = []
    for device in devices:
        state, quiet_s = _state(device, now, silent_after_ms)
        out.append(FleetDevice(id=device.id, kind=device.kind, district=device.district, lat=device.lat,
                               lon=device.lon, state=state, last_seen_ms=device.last_seen_ms, silent_for_s=quiet_s,
                               alert_severity=worst.get(device.id),
                               maintenance_until_ms=maintenance[device.id].until_ms if device.id in maintenance
                               else None))
    return out


def _known_district(services: ApiServices, district: str | None) -> str | None:
    if district is not None and district not in services.settings.city.slugs:
        raise HTTPException(404, f"no district {district!r}: the city profile has "
                                 f"{', '.join(services.settings.city.slugs)}")
    return district


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """'min_lon,min_lat,max_lon,max_lat' in degrees (its form checked by BBOX_PATTERN: 422) -> the box;
    a box upside down or off the globe a 400 that says why."""
    if text is None:
        return None
    min_lon, min_lat, max_lon, max_lat = (float(part) for part in text.split(","))
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise HTTPException(400, "bbox must have -180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90")
    return min_lon, min_lat, max_lon, max_lat


FILTER_RESPONSES = {400: {"model": ErrorBody, "description": "a bbox upside down or off the globe"},
                    404: {"model": ErrorBody, "description": "a district the city profile does not have"}}


@router.get("/devices", summary="Devices with their state and worst open alert (for the map), a page at a time",
            responses=FILTER_RESPONSES)
def devices(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
            state: Literal["provisioned", "active", "silent", "retired"] | None = None,
            district: Annotated[str | None, Query(pattern=DISTRICT_PATTERN, max_length=64,
                                                  description="only this district's devices (a profile slug)")] = None,
            bbox: Annotated[str | None, Query(pattern=BBOX_PATTERN, max_length=80,
                                              description="only devices registered inside the box "
                                                          "min_lon,min_lat,max_lon,max_lat (degrees)")] = None,
            ) -> Page[FleetDevice]:
    now = now_ms()
    rows, total = services.registry.fleet_page(now - _silent_after_ms(services), district=_known_district(
        services, district), state=state, bbox=_bbox(bbox), limit=page.limit, offset=page.offset)
    return Page(data=_shown(services, rows, now), count=total)


@router.get("/silent", summary="Devices that stopped reporting, longest silent first")
def silent(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)]) -> Page[FleetDevice]:
    now = now_ms()
    rows, total = services.registry.fleet_page(now - _silent_after_ms(services), state="silent", silent_first=True,
                                               limit=page.limit, offset=page.offset)
    return Page(data=_shown(services, rows, now), count=total)


@router.get("/districts", summary="The fleet counted by district: devices by state, maintenance, open alerts")
def districts(user: AnyRole, services: Services) -> Page[DistrictFleet]:
    now = now_ms()
    registry = services.registry
    counts = registry.fleet_counts(now - _silent_after_ms(services))
    alerts: dict[str, dict[str, int]] = {}
    for _, district, severity in services.alerts.store.open_severities():
        alerts.setdefault(district, dict.fromkeys(SEVERITIES, 0))[severity] += 1
    maintenance: dict[str, int] = {}
    for district in registry.districts_of(list(services.alerts.alarms.maintenance.active(now))).values():
        maintenance[district] = maintenance.get(district, 0) + 1
    profile = services.settings.city
    slugs = [*profile.slugs, *sorted(set(counts) - set(profile.slugs))]  # a district left out of the profile too
    out = []
    for slug in slugs:
        states = {state: counts.get(slug, {}).get(state, 0) for state in STATES}
        by_severity = alerts.get(slug, dict.fromkeys(SEVERITIES, 0))
        present = [s for s in SEVERITIES if by_severity[s]]
        lat = lon = None
        if slug in profile.slugs:
            spot = profile.district(slug).geometry.representative_point()
            lat, lon = spot.y, spot.x
        out.append(DistrictFleet(district=slug, lat=lat, lon=lon, devices=sum(states.values()) - states["retired"],
                                 states=states, maintenance=maintenance.get(slug, 0),
                                 alert_severity=max(present, key=rank) if present else None,
                                 alerts={s: by_severity[s] for s in reversed(SEVERITIES)}))
    return Page(data=out, count=len(out))
