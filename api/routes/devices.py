"""The device registry as technicians use it: add, list, show, rotate, retire,
configure, and watch a device live. Every change goes through
telemetry_shared.provisioning, so the API and the broker never disagree."""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import AnyRole, RequireRole
from api.errors import ErrorBody
from api.paging import Page, PageParams, page_params
from api.services import ApiServices, Services
from edge import contract
from telemetry_shared import provisioning
from telemetry_shared.device_link import DeviceLink, LinkError
from telemetry_shared.provisioning import Provisioner, ProvisioningError
from telemetry_shared.registry import STATES, Device, DeviceNew

MAX_WATCH_S = 3600
HEARTBEAT_S = 10.0
STATUS_WAIT_S = 0.5  # how long `show` waits for the broker's retained status

Installer = RequireRole("technician")  # changes devices and sees their passwords (admin too)


# ---------------------------------------------------------------- models


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=32, description="leave out for a generated id like wtr-3f9a1c")
    kind: str = Field(max_length=32, description=f"one of {', '.join(contract.KINDS)}")
    district: str = Field(max_length=64)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    note: str = Field("", max_length=500)
    interval_ms: int = Field(10000, ge=contract.MIN_INTERVAL_MS, le=contract.MAX_INTERVAL_MS)
    batch_size: int = Field(1, ge=1, le=contract.MAX_SAMPLES)


class DevicePublic(BaseModel):
    id: str
    kind: str
    district: str
    lat: float | None
    lon: float | None
    note: str
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
    model_config = ConfigDict(extra="forbid")

    interval_ms: int = Field(ge=contract.MIN_INTERVAL_MS, le=contract.MAX_INTERVAL_MS)
    batch_size: int = Field(1, ge=1, le=contract.MAX_SAMPLES)
    thresholds: dict[str, tuple[float, float]] | None = Field(
        None, max_length=contract.MAX_METRICS_PER_SAMPLE, description="{metric: [low, high]}: report at once outside")


# ---------------------------------------------------------------- wiring


class DeviceAdmin:
    """The provisioner and its broker link, one per app; the link connects on first use."""

    def __init__(self, services: ApiServices):
        self.settings = services.settings
        self.lock = threading.Lock()
        self.link: DeviceLink | None = None
        self.provisioner = Provisioner(services.settings, services.registry, self._publish_config)

    def connected_link(self) -> DeviceLink:
        with self.lock:
            if self.link is None:
                s = self.settings
                try:
                    self.link = DeviceLink(s.mqtt_host, s.mqtt_port, s.device_admin_mqtt_user, s.mqtt_password).start()
                except LinkError as exc:
                    raise HTTPException(503, f"the broker is not reachable for device admin: {exc}") from exc
            return self.link

    def _publish_config(self, device_id: str, raw: bytes) -> None:
        try:
            self.connected_link().publish_config(device_id, raw)
        except LinkError as exc:
            raise HTTPException(503, str(exc)) from exc

    def stop(self) -> None:
        with self.lock:
            if self.link is not None:
                self.link.stop()
                self.link = None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    admin = app.state.services.extra.pop("device_admin", None)
    if admin is not None:
        admin.stop()


def get_admin(services: Services) -> DeviceAdmin:
    admin = services.extra.get("device_admin")
    if admin is None:
        admin = services.extra.setdefault("device_admin", DeviceAdmin(services))
    return admin


Admin = Annotated[DeviceAdmin, Depends(get_admin)]
ERRORS = {400: {"model": ErrorBody, "description": "the body is not JSON"},
          401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
          403: {"model": ErrorBody, "description": "the key's role may not do this"},
          404: {"model": ErrorBody, "description": "no such device"},
          409: {"model": ErrorBody, "description": "the device exists already, or is retired"},
          503: {"model": ErrorBody, "description": "the broker could not be reloaded or reached; nothing changed"}}
router = APIRouter(prefix="/devices", tags=["devices"], lifespan=_lifespan, responses=ERRORS)


def _device_id(device_id: str) -> str:
    try:
        provisioning.check_device_id(device_id)
    except ProvisioningError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return device_id


DeviceId = Annotated[str, Depends(_device_id)]


def _run(action, *args, **kwargs):
    """Call the provisioner; its errors become HTTP errors with the same message."""
    try:
        return action(*args, **kwargs)
    except ProvisioningError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


# ---------------------------------------------------------------- routes


@router.get("", summary="Devices, filtered and paged")
def list_devices(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
                 kind: Annotated[str | None, Query(max_length=32)] = None,
                 district: Annotated[str | None, Query(max_length=64)] = None,
                 state: Annotated[str | None, Query(max_length=32)] = None) -> Page[DevicePublic]:
    if kind is not None and kind not in contract.KINDS:
        raise HTTPException(422, f"unknown kind {kind!r}; one of {', '.join(contract.KINDS)}")
    if state is not None and state not in STATES:
        raise HTTPException(422, f"unknown state {state!r}; one of {', '.join(STATES)}")
    devices, total = services.registry.list(kind, district, state, page.limit, page.offset)
    return Page(data=[DevicePublic.of(d) for d in devices], count=total)


@router.post("", status_code=201, summary="Register a device: id, password (shown once) and first config")
def add_device(body: DeviceCreate, user: Installer, admin: Admin) -> DeviceCredentials:
    fields = body.model_dump(exclude={"interval_ms", "batch_size"})
    fields["id"] = fields["id"] or _run(admin.provisioner.new_id, body.kind)
    try:
        new = DeviceNew(**fields)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    issued = _run(admin.provisioner.add, new, body.interval_ms, body.batch_size)
    return DeviceCredentials(device=DevicePublic.of(issued.device), mqtt_user=issued.device.id,
                             password=issued.password)


@router.get("/{device_id}", summary="One device: registry entry, config, and its retained status")
def show_device(device_id: DeviceId, user: AnyRole, admin: Admin) -> DeviceDetail:
    device = _run(admin.provisioner.get, device_id)
    status = None
    try:
        status = admin.connected_link().last_status(device_id, STATUS_WAIT_S)
    except HTTPException:
        status = {"error": "broker unreachable: status unknown"}
    return DeviceDetail(**DevicePublic.of(device).model_dump(), config=admin.provisioner.config(device_id),
                        status=status)


@router.post("/{device_id}/rotate", summary="New credentials; the old ones are refused and their session cut")
def rotate_device(device_id: DeviceId, user: Installer, admin: Admin) -> DeviceCredentials:
    issued = _run(admin.provisioner.rotate, device_id)
    return DeviceCredentials(device=DevicePublic.of(issued.device), mqtt_user=issued.device.id,
                             password=issued.password, cut_ms=issued.cut_ms)


@router.post("/{device_id}/retire", summary="Refuse the device from now on and cut its live session")
def retire_device(device_id: DeviceId, user: Installer, admin: Admin) -> DeviceRetired:
    device, cut_ms = _run(admin.provisioner.retire, device_id)
    return DeviceRetired(device=DevicePublic.of(device), cut_ms=cut_ms)


@router.put("/{device_id}/config", summary="Publish a retained config that the device applies")
def set_config(device_id: DeviceId, body: ConfigSet, user: RequireRole("technician", "engineer"),
               admin: Admin) -> dict:
    thresholds = {m: [lo, hi] for m, (lo, hi) in body.thresholds.items()} if body.thresholds else None
    return _run(admin.provisioner.set_config, device_id, body.interval_ms, body.batch_size, thresholds)


@router.get("/{device_id}/live", summary="Server-sent events: the device's status and readings as they arrive",
            response_class=StreamingResponse)
def watch_device(device_id: DeviceId, user: AnyRole, admin: Admin,
                 timeout_s: Annotated[float, Query(gt=0, le=MAX_WATCH_S)] = 60,
                 max_events: Annotated[int, Query(ge=0, le=100_000, description="0: no limit")] = 0
                 ) -> StreamingResponse:
    device = _run(admin.provisioner.get, device_id)
    watch = admin.connected_link().watch(device_id)
    return StreamingResponse(_events(watch, device, timeout_s, max_events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _events(watch, device: Device, timeout_s: float, max_events: int) -> AsyncIterator[str]:
    """SSE lines for one watcher, bounded in time and count; always ends with `end`.

    Async, waiting at most a second at a time, so a watcher that hangs up is
    noticed (Starlette cancels us) within a second, not at the next message.
    """
    deadline = time.monotonic() + timeout_s
    sent = 0
    quiet_since = time.monotonic()
    try:
        yield _sse("hello", {"device": device.id, "kind": device.kind, "state": device.state})
        while (left := deadline - time.monotonic()) > 0 and (not max_events or sent < max_events):
            message = await asyncio.to_thread(watch.get, min(left, 1.0))
            if message is None:
                if time.monotonic() - quiet_since > HEARTBEAT_S:
                    quiet_since = time.monotonic()
                    yield ": still watching\n\n"
                continue
            quiet_since = time.monotonic()
            sent += 1
            yield _sse(*_describe(message, device.kind))
        yield _sse("end", {"events": sent, "dropped": watch.dropped})
    finally:
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
