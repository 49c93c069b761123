"""Liveness and readiness. No login (orchestrators call them); they say only
whether each dependency answers, never where it is or how it is configured."""

import socket
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from api.alerts.outbox import STATUSES
from api.services import ApiServices, Services

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    latency_ms: float
    message: str = ""


class Notifications(BaseModel):
    """The notification outbox: waiting, delivered, given up on (after CITY_API_NOTIFY_GIVE_UP_S)."""

    pending: int
    sent: int
    failed: int
    oldest_pending_s: float


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]
    notifications: Notifications | None = None


@router.get("/health", summary="The process is up")
def health() -> Health:
    return Health(status="ok")


class DependencyDown(Exception):
    """A check's own finding, safe to show (no addresses, no configuration)."""


def _timed(check) -> Check:
    start = time.perf_counter()
    try:
        message = check()
        ok = True
    except DependencyDown as exc:
        ok, message = False, str(exc)
    except Exception as exc:  # any failure of a dependency is "not ready"; its type only, never its address
        ok, message = False, type(exc).__name__
    return Check(ok=ok, latency_ms=round((time.perf_counter() - start) * 1000, 2), message=message or "")


def _broker(services: ApiServices) -> str:
    subscriber = services.alerts.subscriber
    if subscriber is not None:
        if not subscriber.connected():
            raise DependencyDown("the alert subscriber is not connected to the broker")
        return "alert subscriber connected"
    s = services.settings
    with socket.create_connection((s.mqtt_host, s.mqtt_port), timeout=2):
        return "port open"


def _influx(services: ApiServices) -> str:
    if not services.influx.ping():
        raise DependencyDown("InfluxDB does not answer /ping")
    return ""


def _registry(services: ApiServices) -> str:
    services.registry.version()
    return ""


@router.get("/ready", summary="Broker, InfluxDB and registry all answer",
            responses={503: {"model": Readiness, "description": "something is not ready"}})
def ready(services: Services) -> Readiness:
    checks = {"broker": _timed(lambda: _broker(services)), "influxdb": _timed(lambda: _influx(services)),
              "registry": _timed(lambda: _registry(services))}
    body = Readiness(status="ready" if all(c.ok for c in checks.values()) else "not ready", checks=checks,
                     notifications=_notifications(services))
    if body.status != "ready":
        return JSONResponse(body.model_dump(), 503)
    return body


def _notifications(services: ApiServices) -> Notifications | None:
    """Counts only: a far end being down does not make the API unready (the outbox keeps what it owes)."""
    try:
        return Notifications(**services.alerts.notifier.counts())
    except Exception:  # the counts are an extra; readiness is decided by the checks
        return None




@router.get("/metrics", summary="Prometheus text: the notification outbox's counts", response_class=PlainTextResponse)
def metrics(services: Services) -> PlainTextResponse:
    counts = services.alerts.notifier.counts()
    lines = ["# HELP city_api_notifications Notifications in the outbox: pending (not yet delivered), sent, "
             "failed (given up on).",
             "# TYPE city_api_notifications gauge"]
    lines += [f'city_api_notifications{{status="{status}"}} {counts[status]}' for status in STATUSES]
    lines += ["# HELP city_api_notifications_oldest_pending_seconds Age of the oldest undelivered notification.",
              "# TYPE city_api_notifications_oldest_pending_seconds gauge",
              f"city_api_notifications_oldest_pending_seconds {counts['oldest_pending_s']}"]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
