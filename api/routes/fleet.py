"""The fleet as the control room sees it: every device's state for the map,
and the devices that have gone silent."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.alerts.store import rank
from api.auth import AnyRole
from api.errors import AUTH_RESPONSES
from api.paging import Page, PageParams, page_params
from api.queries import now_ms
from api.services import ApiServices, Services
from telemetry_shared.registry import Device

router = APIRouter(prefix="/fleet", tags=["fleet"], responses=AUTH_RESPONSES)

MAX_DEVICES = 100_000


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


def _state(device: Device, now: int, silent_after_ms: int) -> tuple[str, float | None]:
    if device.last_seen_ms is None:
        return device.state, None
    quiet_ms = now - device.last_seen_ms
    if device.state in ("active", "silent") and quiet_ms > silent_after_ms:
        return "silent", quiet_ms / 1000
    return device.state, (quiet_ms / 1000 if device.state == "silent" else None)


def fleet(services: ApiServices) -> list[FleetDevice]:
    devices, _ = services.registry.list(limit=MAX_DEVICES)
    worst: dict[str, str] = {}
    open_alerts, _ = services.alerts.store.find(limit=MAX_DEVICES, resolved=False, state="active")
    for alert in open_alerts:
        if alert.device not in worst or rank(alert.severity) > rank(worst[alert.device]):
            worst[alert.device] = alert.severity
    now = now_ms()
    maintenance = services.alerts.alarms.maintenance.active(now)
    silent_after_ms = int(services.settings.api_silent_after_s * 1000)
    out = []
    for device in devices:
        state, quiet_s = _state(device, now, silent_after_ms)
        out.append(FleetDevice(id=device.id, kind=device.kind, district=device.district, lat=device.lat,
                               lon=device.lon, state=state, last_seen_ms=device.last_seen_ms, silent_for_s=quiet_s,
                               alert_severity=worst.get(device.id),
                               maintenance_until_ms=maintenance[device.id].until_ms if device.id in maintenance
                               else None))
    return out


@router.get("/devices", summary="Every device with its state and worst open alert (for the map)")
def devices(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
            state: Literal["provisioned", "active", "silent", "retired"] | None = None) -> Page[FleetDevice]:
    rows = [d for d in fleet(services) if state is None or d.state == state]
    return Page(data=rows[page.offset: page.offset + page.limit], count=len(rows))


@router.get("/silent", summary="Devices that stopped reporting, longest silent first")
def silent(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)]) -> Page[FleetDevice]:
    rows = sorted((d for d in fleet(services) if d.state == "silent"), key=lambda d: -(d.silent_for_s or 0))
    return Page(data=rows[page.offset: page.offset + page.limit], count=len(rows))
