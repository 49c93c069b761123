"""Liveness and readiness. No login (orchestrators call them); they say only
whether each dependency answers, never where it is or how it is configured."""

import socket
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.services import ApiServices, Services

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    latency_ms: float
    message: str = ""


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]


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
    body = Readiness(status="ready" if all(c.ok for c in checks.values()) else "not ready", checks=checks)
    if body.status != "ready":
        return JSONResponse(body.model_dump(), 503)
    return body
