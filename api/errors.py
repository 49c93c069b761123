"""Every error is JSON: {"error": short code, "message": for a person, "detail": optional}."""

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from telemetry_shared.influx import InfluxError, InfluxUnavailable

log = logging.getLogger("api")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid_input", 429: "rate_limited", 503: "unavailable"}


class ErrorBody(BaseModel):
    error: str
    message: str
    detail: list | dict | None = None


def _body(status: int, message: str, detail: object = None) -> dict:
    return {"error": CODES.get(status, "error"), "message": message, "detail": detail}


def _readable(errors: list[dict]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _allowed(app: FastAPI, request: Request) -> str:
    """Every method the schema gives this path: Starlette's 405 names only the first route of the
    path, and FastAPI makes one route per method (GET /keys and POST /keys are two)."""
    methods: set[str] = set()
    for template, item in app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {method.upper() for method in item}
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = (headers or {}) | {"Allow": _allowed(app, request)}
        return JSONResponse(_body(exc.status_code, message), exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse(_body(422, _readable(errors), errors), 422)

    @app.exception_handler(InfluxError)
    async def influx_error(request: Request, exc: InfluxError) -> JSONResponse:
        # by cause: 503 only when InfluxDB is away or overloaded; a query it refused came from the request
        log.warning("InfluxDB error on %s: %s", request.url.path, exc)
        if isinstance(exc, InfluxUnavailable):
            return JSONResponse(_body(503, "the readings store (InfluxDB) did not answer; try again"), 503)
        return JSONResponse(_body(422, f"the readings store refused this query: {str(exc)[:200]}"), 422)


def document_bad_bodies(app: FastAPI) -> dict:
    """The OpenAPI schema, with the 400 that every route taking a JSON body answers to a body that is
    not JSON (FastAPI answers it but does not document it). Built once, then cached as FastAPI does."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for item in schema["paths"].values():
            for operation in item.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation["responses"].setdefault("400", {
                        "description": "the body is not JSON",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
        app.openapi_schema = schema
    return app.openapi_schema


ERROR_RESPONSES = {422: {"model": ErrorBody}, 503: {"model": ErrorBody, "description": "a dependency is down"}}
AUTH_RESPONSES = {401: {"model": ErrorBody, "description": "no key, or an unknown or revoked key"},
                  403: {"model": ErrorBody, "description": "the key's role may not do this"}}
