"""Alerts: list and filter, detail with the data around it, acknowledge,
assign and resolve (with who and a note), and an SSE stream of changes."""

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api import queries
from api.alerts.notify import Delivery, mask
from api.alerts.service import AlertService
from api.alerts.store import Alert, AlertConflict, AlertNotFound, AuditEntry
from api.auth import AnyRole, RequireRole
from api.db import now_ms
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.params import NOT_BLANK_PATTERN, STRICT_BODY, Kind
from api.services import Services
from telemetry_shared.influx import InfluxError
from telemetry_shared.settings import get_settings

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=AUTH_RESPONSES)

Responder = RequireRole("operator", "engineer")
Shelver = RequireRole("operator")  # ISA-18.2: shelving is the operator's (admin too)
AlertId = Annotated[str, Path(min_length=1, max_length=64)]
Slug = Annotated[str, Query(min_length=1, max_length=64)]
BEFORE_MS = 2 * 3600 * 1000  # the detail shows the readings from 2 h before the start
AFTER_MS = 15 * 60 * 1000
DETAIL_POINTS = 240


class Note(BaseModel):
    model_config = STRICT_BODY

    note: str = Field("", max_length=2000, description="why, what was done")


class Assignment(BaseModel):
    model_config = STRICT_BODY

    assignee: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@'()-][A-Za-z0-9_ .@'()-]*$",
                          description="a person: ASCII letters, digits, space and . @ _ ' ( ) -")
    note: str = Field("", max_length=2000)


class Resolution(BaseModel):
    # Python's regex engine, so "\S" means here what it means where schemathesis and hypothesis generate from it
    model_config = STRICT_BODY | ConfigDict(regex_engine="python-re")

    note: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK_PATTERN,
                      description="what was found and done (required; not only spaces)")
    public_note: str = Field("", max_length=1000, description="the answer the citizens whose complaints are linked "
                                                              "to this incident read (public); empty: none")
    cause: Literal["fault", "false_alarm", "planned_work"] | None = Field(
        None, description="what it was: a real fault, a false alarm, or expected (planned work); false alarms "
                          "teach the alarm tuning (GET /alarms/tuning)")


def _shelve_maximum(schema: dict) -> None:
    """The schema states the configured maximum (read when the schema is built)."""
    schema["maximum"] = get_settings().api_alarm_shelve_max_s / 60


class Shelving(BaseModel):
    model_config = STRICT_BODY | ConfigDict(regex_engine="python-re")

    minutes: float = Field(gt=0, json_schema_extra=_shelve_maximum,
                         description="how long; at most CITY_API_ALARM_SHELVE_MAX_S (8 h by default)")
    reason: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK_PATTERN, description="why (required)")


class AroundPoint(BaseModel):
    t_ms: int
    value: float


class AlertDetail(BaseModel):
    alert: Alert
    audit: list[AuditEntry]
    notifications: list[Delivery]
    readings: list[AroundPoint] = Field(description=f"the alert's metric from 2 h before it started, "
                                                    f"at most {DETAIL_POINTS} points")
    readings_every_ms: int
    readings_error: str = ""


def alert_service(services: Services) -> AlertService:
    return services.alerts


Alerts = Annotated[AlertService, Depends(alert_service)]


def _not_found(exc: AlertNotFound) -> HTTPException:
    return HTTPException(404, str(exc))


@router.get("", summary="List alerts, most severe first, with filters", response_model=Page[Alert])
def list_alerts(user: AnyRole, alerts: Alerts, page: Annotated[PageParams, Depends(page_params)],
                state: Literal["active", "cleared"] | None = None,
                ack: Literal["acknowledged", "unacknowledged"] | None = None,
                resolved: bool | None = Query(None, description="false: the open incidents only"),
                severity: Literal["info", "warning", "critical"] | None = None,
                kind: Kind | None = None,
                district: Slug | None = None, device: Slug | None = None,
                assignee: Slug | None = None,
                priority: Literal["high", "medium", "low"] | None = None,
                board: bool | None = Query(None, description="true: the alarms the board shows on their own "
                                                             "(open, not shelved, suppressed, chattering or grouped)"),
                shelved: bool | None = None,
                group: Annotated[str | None, Query(min_length=1, max_length=64,
                                                   description="the children of this root alarm")] = None) -> Response:
    acknowledged = None if ack is None else ack == "acknowledged"
    data, total = alerts.store.find(page.limit, page.offset, acknowledged=acknowledged, resolved=resolved,
                                    on_board=board, shelved=shelved, state=state, severity=severity, kind=kind,
                                    district=district, device=device, assignee=assignee, priority=priority,
                                    group_id=group)
    # the hottest route: serialised once, straight to JSON, instead of validated again on the way out
    return Response(Page[Alert](data=data, count=total).model_dump_json(), media_type="application/json")


@router.get("/stream", summary="Server-sent events: every alert change as it happens",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: hello` once, then `event: alert` with "
                                            "{changes, alert} per change; comments as heartbeats; "
                                            "`event: end` with {reason} when the key is revoked or its "
                                            "role changes (checked every second)"}})
def stream(user: AnyRole, alerts: Alerts, services: Services) -> StreamingResponse:
    hello = {"user": user.name, "role": user.role}
    return StreamingResponse(alerts.hub.stream(hello, user, services.rights), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/{alert_id}", summary="One alert: explanation, audit trail, notifications, readings around it",
            responses={404: {"model": ErrorBody, "description": "no such alert"}})
def detail(alert_id: AlertId, user: AnyRole, alerts: Alerts, services: Services) -> AlertDetail:
    try:
        alert, audit = alerts.store.get_with_audit(alert_id)
    except AlertNotFound as exc:
        raise _not_found(exc) from exc
    start = max(0, alert.started_ms - BEFORE_MS)
    end = max(alert.updated_ms, alert.started_ms) + AFTER_MS
    every = queries.bucket_for(end - start, DETAIL_POINTS)
    readings, error = [], ""
    try:
        readings = queries.history(services.influx, alert.kind, alert.device, alert.metric, start, end, every)
    except (queries.QueryError, InfluxError) as exc:
        error = str(exc)[:200]  # the alert is still worth showing without its readings
    deliveries = [d.model_copy(update={"target": mask(d.target)}) for d in alerts.notifier.deliveries(alert_id)]
    return AlertDetail(alert=alert, audit=audit, notifications=deliveries,
                       readings=readings, readings_every_ms=every, readings_error=error)


def _act(alerts: AlertService, action: Callable[..., Alert], alert_id: str, change: str, *args: str | int) -> Alert:
    """Run a person's action on the store and tell the streams and the notifier."""
    try:
        alert = action(alert_id, *args)
    except AlertNotFound as exc:
        raise _not_found(exc) from exc
    except AlertConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    alerts.changed(alert, [change])
    return alert


CONFLICT = {409: {"model": ErrorBody, "description": "already acknowledged / resolved"},
            404: {"model": ErrorBody, "description": "no such alert"}}


@router.post("/{alert_id}/ack", summary="Acknowledge: someone is on it", responses=CONFLICT)
def acknowledge(alert_id: AlertId, body: Note, user: Responder, alerts: Alerts) -> Alert:
    return _act(alerts, alerts.store.acknowledge, alert_id, "acknowledged", user.name, body.note)


@router.post("/{alert_id}/assign", summary="Give the incident to someone", responses=CONFLICT)
def assign(alert_id: AlertId, body: Assignment, user: Responder, alerts: Alerts) -> Alert:
    return _act(alerts, alerts.store.assign, alert_id, "assigned", user.name, body.assignee, body.note)


@router.post("/{alert_id}/resolve", summary="Close the incident with a note", responses=CONFLICT)
def resolve(alert_id: AlertId, body: Resolution, user: Responder, alerts: Alerts, services: Services) -> Alert:
    alert = _act(alerts, alerts.store.resolve, alert_id, "resolved", user.name, body.note, body.cause or "")
    services.linker.answer_resolved(alert_id, body.public_note.strip())  # its citizens get the public answer
    services.alerts.alarms.tuning.learn(alert, now_ms())  # a dismissal may propose a tuning by itself
    return alert


@router.post("/{alert_id}/shelve", summary="Shelve: off the board for a stated time, with a reason",
             responses=CONFLICT | {422: {"model": ErrorBody, "description": "longer than the configured maximum"}})
def shelve(alert_id: AlertId, body: Shelving, user: Shelver, alerts: Alerts) -> Alert:
    max_s = alerts.settings.api_alarm_shelve_max_s
    if body.minutes * 60 > max_s:
        raise HTTPException(422, f"an alarm may be shelved for at most {max_s / 60:g} minutes "
                                 f"(CITY_API_ALARM_SHELVE_MAX_S), not {body.minutes:g}")
    until = now_ms() + int(body.minutes * 60_000)
    return _act(alerts, alerts.store.shelve, alert_id, "shelved", user.name, until, body.reason)


@router.post("/{alert_id}/unshelve", summary="Back on the board before its time", responses=CONFLICT)
def unshelve(alert_id: AlertId, body: Note, user: Shelver, alerts: Alerts) -> Alert:
    return _act(alerts, alerts.store.unshelve, alert_id, "unshelved", user.name, body.note)
