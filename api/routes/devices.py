"""The device registry as technicians use it: add, list, show, rotate, retire,
configure, and watch a device live. Every change goes through
telemetry_shared.provisioning, so the API and the broker never disagree."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from api.auth import Admin, AnyRole, RequireRole
from api.device_control import DeviceControl
from api.errors import ErrorBody
from api.paging import Page, PageParams, page_params
from api.params import (
    DEVICE_ID_PATTERN,
    SLUG_PATTERN,
    STRICT_BODY,
    DevicePath,
    DeviceState,
    Kind,
    MetricName,
    WholeNumber,
)
from api.rights import Grant
from api.services import Services
from edge import contract
from telemetry_shared.device_link import Watch
from telemetry_shared.provisioning import ProvisioningError
from telemetry_shared.registry import SERVICE_PREFIX, Device, DeviceNew
from telemetry_shared.settings import get_settings

MAX_WATCH_S = 3600
HEARTBEAT_S = 10.0
STATUS_WAIT_S = 0.5  # how long `show` waits for the broker's retained status

Installer = RequireRole("technician")  # changes devices and sees their passwords (admin too)


# ---------------------------------------------------------------- models


def _profile_districts(schema: dict) -> None:
    """The schema names the city profile's districts, the only ones registration accepts (read when the
    schema is built, so it is the running city's profile)."""
    schema["enum"] = list(get_settings().city.slugs)


class DeviceCreate(BaseModel):
    model_config = STRICT_BODY

    id: str | None = Field(None, pattern=DEVICE_ID_PATTERN, description="leave out for a generated id like "
                           "wtr-3f9a1c; ids starting with svc- are the services' own (409)")
    kind: Kind
    district: str = Field(pattern=SLUG_PATTERN, description="a district slug of the city profile (/public/map)",
                          json_schema_extra=_profile_districts)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    note: str = Field("", max_length=500)
    interval_ms: WholeNumber = Field(10000, ge=contract.MIN_INTERVAL_MS, le=contract.MAX_INTERVAL_MS)
    batch_size: WholeNumber = Field(1, ge=1, le=contract.MAX_SAMPLES)


class DevicePublic(BaseModel):
    id: str
    kind: str
    district: str
    lat: float | None
    lon: float | None
    note: str
    public_name: str
    firmware: str
    state: str
    last_seen_ms: int | None
    created_ms: int
    updated_ms: int

    @classmethod
    def of(cls, device: Device) -> "DevicePublic":
        return cls(**device.model_dump(exclude={"credential_hash"}))


class DeviceDetail(DevicePublic):
    config: dict | None = Field(description="the config last published to the device (retained)")
    status: dict | None = Field(description="the device's retained status: birth or last will, battery, RSSI")


class DeviceCredentials(BaseModel):
    device: DevicePublic
    mqtt_user: str = Field(description="the MQTT username and client id: the device id")
    password: str = Field(description="shown once, stored only as a hash: put it on the device now")
    cut_ms: float | None = Field(None, description="how long cutting the old live session took; null on a "
                                 "rotation when the broker did not confirm within 4 s")


class DeviceRetired(BaseModel):
    device: DevicePublic
    cut_ms: float | None = Field(description="how long cutting its live session took; null when the broker did "
                                 "not confirm within 4 s")


class ConfigSet(BaseModel):
    model_config = STRICT_BODY

    interval_ms: WholeNumber = Field(ge=contract.MIN_INTERVAL_MS, le=contract.MAX_INTERVAL_MS)
    batch_size: WholeNumber = Field(1, ge=1, le=contract.MAX_SAMPLES)
    thresholds: dict[MetricName, Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        None, max_length=contract.MAX_METRICS_PER_SAMPLE,
        description="{metric: [low, high]}: report at once outside (a pair given high first is put in order); "
                    "a metric the device's kind does not have is refused with 409")


class PublicName(BaseModel):
    model_config = STRICT_BODY

    public_name: str = Field(max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$",
                             description="what the public sees, e.g. a hospital ward's name on /public/hospitals/beds "
                                         "(empty: a generic name); the registry note is never public")


# ---------------------------------------------------------------- wiring


def device_control(services: Services) -> DeviceControl:
    return services.devices


Control = Annotated[DeviceControl, Depends(device_control)]
ERRORS = {400: {"model": ErrorBody, "description": "the body is not JSON"},
          401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
          403: {"model": ErrorBody, "description": "the key's role may not do this"},
          404: {"model": ErrorBody, "description": "no such device"},
          409: {"model": ErrorBody, "description": "the device exists already, or is retired"},
          503: {"model": ErrorBody, "description": "the broker could not be reloaded or reached; nothing changed"}}
router = APIRouter(prefix="/devices", tags=["devices"], responses=ERRORS)


def _run(action, *args, **kwargs):
    """Call the provisioner; its errors become HTTP errors with the same message."""
    try:
        return action(*args, **kwargs)
    except ProvisioningError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


# ---------------------------------------------------------------- routes


@router.get("", summary="Devices, filtered and paged")
def list_devices(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
                 kind: Kind | None = None,
                 district: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
                 state: DeviceState | None = None) -> Page[DevicePublic]:
    devices, total = services.registry.list(kind, district, state, page.limit, page.offset)
    return Page(data=[DevicePublic.of(d) for d in devices], count=total)


@router.post("", status_code=201, summary="Register a device: id, password (shown once) and first config")
def add_device(body: DeviceCreate, user: Installer, control: Control) -> DeviceCredentials:
    fields = body.model_dump(exclude={"interval_ms", "batch_size"})
    fields["id"] = fields["id"] or _run(control.provisioner.new_id, body.kind)
    if fields["id"].startswith(SERVICE_PREFIX):
        raise HTTPException(409, f"ids starting with {SERVICE_PREFIX!r} are reserved for the platform's service "
                                 "accounts")
    try:
        new = DeviceNew(**fields)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    issued = _run(control.provisioner.add, new, body.interval_ms, body.batch_size)
    return DeviceCredentials(device=DevicePublic.of(issued.device), mqtt_user=issued.device.id,
                             password=issued.password)


@router.get("/{device_id}", summary="One device: registry entry, config, and its retained status")
def show_device(device_id: DevicePath, user: AnyRole, control: Control) -> DeviceDetail:
    device = _run(control.provisioner.get, device_id)
    status = None
    try:
        status = control.connected_link().last_status(device_id, STATUS_WAIT_S)
    except HTTPException:
        status = {"error": "broker unreachable: status unknown"}
    return DeviceDetail(**DevicePublic.of(device).model_dump(), config=control.provisioner.config(device_id),
                        status=status)


@router.post("/{device_id}/rotate", summary="New credentials; the old ones are refused and their session cut")
def rotate_device(device_id: DevicePath, user: Installer, control: Control) -> DeviceCredentials:
    issued = _run(control.provisioner.rotate, device_id)
    return DeviceCredentials(device=DevicePublic.of(issued.device), mqtt_user=issued.device.id,
                             password=issued.password, cut_ms=issued.cut_ms)


@router.post("/{device_id}/retire", summary="Refuse the device from now on and cut its live session")
def retire_device(device_id: DevicePath, user: Installer, control: Control) -> DeviceRetired:
    device, cut_ms = _run(control.provisioner.retire, device_id)
    return DeviceRetired(device=DevicePublic.of(device), cut_ms=cut_ms)


@router.put("/{device_id}/config", summary="Publish a retained config that the device applies")
def set_config(device_id: DevicePath, body: ConfigSet, user: RequireRole("technician", "engineer"),
               control: Control) -> dict:
    thresholds = {m: sorted(pair) for m, pair in body.thresholds.items()} if body.thresholds else None
    kind = _run(control.provisioner.get, device_id).kind
    foreign = sorted(set(thresholds or ()) - set(contract.KINDS[kind]))
    if foreign:  # valid metrics, but not this device's: its kind decides
        raise HTTPException(409, f"{', '.join(map(repr, foreign))} is not a {kind} metric ({device_id} is a {kind} "
                                 f"device); one of {', '.join(contract.KINDS[kind])}")
    return _run(control.provisioner.set_config, device_id, body.interval_ms, body.batch_size, thresholds)


@router.put("/{device_id}/public-name", summary="Set the name the public sees (e.g. a hospital ward's)")
def set_public_name(device_id: DevicePath, body: PublicName, user: Admin, control: Control) -> DevicePublic:
    _run(control.provisioner.get, device_id)
    return DevicePublic.of(control.provisioner.registry.update(device_id, public_name=body.public_name.strip()))


@router.get("/{device_id}/live", summary="Server-sent events: the device's status and readings as they arrive",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`hello`, then `status`, `telemetry` or `invalid` per message, "
                                            "then `end` with {events, dropped, reason}: reason `timeout`, "
                                            "`max_events`, `revoked` or `role_changed` (the key is re-checked "
                                            "every second)"}})
async def watch_device(device_id: DevicePath, user: AnyRole, control: Control, services: Services,
                       timeout_s: Annotated[float, Query(gt=0, le=MAX_WATCH_S)] = 60,
                       max_events: Annotated[int, Query(ge=0, le=100_000, description="0: no limit")] = 0
                       ) -> StreamingResponse:
    device = await asyncio.to_thread(_run, control.provisioner.get, device_id)
    link = await asyncio.to_thread(control.connected_link)
    watch = link.watch(device_id, asyncio.get_running_loop())
    grant = services.rights.grant(user, watch.end)
    return StreamingResponse(_events(watch, grant, device, timeout_s, max_events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _events(watch: Watch, grant: Grant, device: Device, timeout_s: float,
                  max_events: int) -> AsyncIterator[str]:
    """SSE lines for one watcher, bounded in time and count; always ends with `end`.

    Waits at most a second at a time, so a watcher that hangs up is noticed
    (Starlette cancels us) within a second, not at the next message.
    """
    deadline = time.monotonic() + timeout_s
    sent = 0
    quiet_since = time.monotonic()
    reason = "timeout"
    try:
        yield _sse("hello", {"device": device.id, "kind": device.kind, "state": device.state})
        while (left := deadline - time.monotonic()) > 0:
            if max_events and sent >= max_events:
                reason = "max_events"
                break
            message = await watch.next(min(left, 1.0))
            if watch.ended:
                reason = watch.ended
                break
            if message is None:
                if time.monotonic() - quiet_since > HEARTBEAT_S:
                    quiet_since = time.monotonic()
                    yield ": still watching\n\n"
                continue
            quiet_since = time.monotonic()
            sent += 1
            yield _sse(*_describe(message, device.kind))
        yield _sse("end", {"events": sent, "dropped": watch.dropped, "reason": reason})
    finally:
        grant.close()
        watch.close()


def _describe(message, kind: str) -> tuple[str, dict]:
    base = {"device": message.device_id, "received_ms": message.received_ms, "retained": message.retained}
    try:
        if message.leaf == "status":
            return "status", base | contract.decode_status(message.payload)
        batch = contract.decode_telemetry(message.payload, kind, message.received_ms)
    except contract.ContractError as exc:
        return "invalid", base | {"leaf": message.leaf, "reason": exc.reason, "detail": exc.detail}
    return "telemetry", base | {"seq": batch.seq, "fw": batch.fw, "hist": batch.hist, "dropped": batch.dropped,
                                "samples": [list(s) for s in batch.samples],
                                "rejects": [list(r) for r in batch.rejects]}


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
