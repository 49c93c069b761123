"""Alarm management: the board's state (flood, stale, chattering, shelved, maintenance), the
KPIs for the shift supervisor, and devices put out of service for maintenance."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api import queries
from api.alarms.kpis import AlarmKpis
from api.alarms.maintenance import Maintenance, MaintenanceConflict
from api.alarms.manager import BoardState
from api.alarms.tuning import WINDOW_MS, Tuning, TuningConflict, TuningNotFound, TuningUnavailable
from api.auth import AnyRole, RequireRole
from api.db import now_ms
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.params import DURATION_PATTERN, NOT_BLANK_PATTERN, STRICT_BODY, DevicePath
from api.routes.readings import TimeMs
from api.services import Services
from telemetry_shared.registry import DeviceNotFound
from telemetry_shared.settings import get_settings

router = APIRouter(tags=["alarms"], responses=AUTH_RESPONSES)

Technician = RequireRole("technician")  # ISA-18.2: removing from service is maintenance's (admin too)
DEFAULT_KPI_RANGE_MS = 86_400_000


def _maintenance_maximum(schema: dict) -> None:
    """The schema states the configured maximum (read when the schema is built)."""
    schema["maximum"] = get_settings().api_alarm_maintenance_max_s / 60


class MaintenanceStart(BaseModel):
    model_config = STRICT_BODY | ConfigDict(regex_engine="python-re")

    minutes: float = Field(gt=0, json_schema_extra=_maintenance_maximum,
                           description="how long from now; it ends by itself then (at most "
                                       "CITY_API_ALARM_MAINTENANCE_MAX_S, 14 days by default)")
    note: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK_PATTERN,
                      description="what is being done (required)")


class MaintenanceChange(BaseModel):
    maintenance: Maintenance
    alerts: list[str] = Field(description="the alarms suppressed (start) or back on the board (stop)")


@router.get("/alarms/state", summary="The board's state: flood, stale, chattering, shelved, under maintenance")
def state(user: AnyRole, services: Services) -> BoardState:
    return services.alerts.alarms.state(now_ms())


@router.get("/alarms/kpis", summary="Alarm-system KPIs over a range (EEMUA 191)")
def alarm_kpis(user: AnyRole, services: Services,
               since: Annotated[str | None, Query(pattern=DURATION_PATTERN,
                                                  description="the last this long, e.g. 8h (a shift), 24h, 7d; "
                                                              "default 24h (ignored with start_ms)")] = None,
               start_ms: TimeMs | None = None, end_ms: TimeMs | None = None) -> AlarmKpis:
    """Over [start_ms, end_ms) or the last `since` up to now; a range that ends before it starts is empty."""
    now = now_ms()
    until_ms = end_ms if end_ms is not None else now
    if start_ms is None:
        start_ms = until_ms - (queries.duration_ms(since) if since else DEFAULT_KPI_RANGE_MS)
    return services.alerts.alarms.kpis(min(start_ms, until_ms), until_ms, now)


class AlarmAuditEntry(BaseModel):
    seq: int
    t_ms: int
    actor: str
    action: str
    subject: str
    note: str
    detail: dict


@router.get("/alarms/audit", summary="The alarm audit trail: maintenance started, stopped, expired")
def alarm_audit(user: AnyRole, services: Services,
                subject: Annotated[str | None, Query(min_length=1, max_length=64,
                                                     description="a device id")] = None) -> Page[AlarmAuditEntry]:
    rows = [AlarmAuditEntry(**row) for row in services.alerts.alarms.maintenance.audit(subject)]
    return Page(data=rows, count=len(rows))


@router.get("/maintenance", summary="Maintenance periods, newest first")
def maintenance_list(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
                     device: Annotated[str | None, Query(min_length=1, max_length=64)] = None) -> Page[Maintenance]:
    data, total = services.alerts.alarms.maintenance.history(device, page.limit, page.offset)
    return Page(data=data, count=total)


NOT_FOUND_CONFLICT = {404: {"model": ErrorBody, "description": "no such device"},
                      409: {"model": ErrorBody, "description": "retired, or already / not under maintenance"}}


@router.post("/devices/{device_id}/maintenance", summary="Put a device under maintenance (out of service)",
             responses=NOT_FOUND_CONFLICT | {422: {"model": ErrorBody, "description": "longer than the "
                                                                                       "configured maximum"}})
def maintenance_start(device_id: DevicePath, body: MaintenanceStart, user: Technician,
                      services: Services) -> MaintenanceChange:
    try:
        device = services.registry.get(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(404, f"no device {device_id}") from exc
    if device.state == "retired":
        raise HTTPException(409, f"{device_id} is retired: nothing to maintain")
    max_s = services.settings.api_alarm_maintenance_max_s
    if body.minutes * 60 > max_s:
        raise HTTPException(422, f"a maintenance lasts at most {max_s / 3600:g} h (CITY_API_ALARM_MAINTENANCE_MAX_S), "
                                 f"not {body.minutes / 60:g} h")
    now = now_ms()
    manager = services.alerts.alarms
    try:
        maintenance, ids = manager.maintenance.start(device_id, now + int(body.minutes * 60_000), body.note,
                                                     user.name, now)
    except MaintenanceConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    manager.maintenance_changed(maintenance, ids, "suppressed")
    return MaintenanceChange(maintenance=maintenance, alerts=ids)


@router.delete("/devices/{device_id}/maintenance", summary="End a device's maintenance now",
               responses=NOT_FOUND_CONFLICT)
def maintenance_stop(device_id: DevicePath, user: Technician, services: Services) -> MaintenanceChange:
    try:
        services.registry.get(device_id)
    except DeviceNotFound as exc:
        raise HTTPException(404, f"no device {device_id}") from exc
    manager = services.alerts.alarms
    try:
        maintenance, ids = manager.maintenance.stop(device_id, user.name, now_ms())
    except MaintenanceConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    manager.maintenance_changed(maintenance, ids, "returned_to_service")
    return MaintenanceChange(maintenance=maintenance, alerts=ids)


# ---------------------------------------------------------------- learning from dismissals

Engineer = RequireRole("engineer")  # approves tuning (admin too)


class TuningDecision(BaseModel):
    model_config = STRICT_BODY

    note: str = Field("", max_length=500, description="why")


TUNING_RESPONSES = {404: {"model": ErrorBody, "description": "no such proposal"},
                    409: {"model": ErrorBody, "description": "already decided (approved, rejected or undone)"},
                    503: {"model": ErrorBody, "description": "the registry file (detector changes) cannot be written: "
                                                             "nothing decided"}}


@router.get("/alarms/tuning", summary="Tuning proposals learnt from false alarms, newest first")
def tuning_list(user: AnyRole, services: Services,
                state: Literal["proposed", "approved", "rejected", "undone"] | None = None) -> Page[Tuning]:
    data = services.alerts.alarms.tuning.list(state)
    return Page(data=data, count=len(data))


@router.post("/alarms/tuning/propose", summary="Propose changes for sources dismissed as false alarms (30 days)")
def tuning_propose(user: Engineer, services: Services) -> Page[Tuning]:
    made = services.alerts.alarms.tuning.propose(now_ms(), WINDOW_MS)
    return Page(data=made, count=len(made))


@router.post("/alarms/tuning/{tuning_id}/{action}", summary="Approve or reject a proposal, or undo an approved one",
             responses=TUNING_RESPONSES)
def tuning_decide(tuning_id: Annotated[int, Path(ge=1, le=2**62)], action: Literal["approve", "reject", "undo"],
                  body: TuningDecision, user: Engineer, services: Services) -> Tuning:
    try:
        return services.alerts.alarms.tuning.decide(tuning_id, user.name, action, body.note, now_ms())
    except TuningNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except TuningConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except TuningUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
