"""Open311 GeoReport v2 for citizens' complaints (pengaduan): the service list, creating a request,
reading one or many, in the spec's field names and formats, JSON or XML (`.json` / `.xml`).

No key: citizens post without one (an `api_key` sent by a client is ignored). Errors are the spec's
list `[{"code": 400, "description": "..."}]`. A request's public view holds the citizen's description,
address, point and photo only once a moderator approved them; contact details never. The location is
`lat` + `long` (its district from the city profile), else the `district` extension (a profile slug);
`address_string` is kept as text. A photo comes as the multipart file `media` (as Open311 clients
send it); `media_url` is ignored (the server fetches nothing a citizen names).
"""

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal
from xml.etree import ElementTree

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from api.citizens.complaints import (
    CATEGORIES,
    CODE_PATTERN,
    MAX_DESCRIPTION,
    Complaint,
    ComplaintRefused,
    NewComplaint,
    clean_text,
)
from api.citizens.photos import PhotoRefused, clean_photo
from api.ratelimit import public_rate_limit
from api.routes.city_map import negotiate
from api.services import ApiServices, Services
from telemetry_shared.i18n import t

# rate limited per client address like every public route (filing has its own limits on top)
router = APIRouter(prefix="/open311/v2", tags=["open311"], dependencies=[Depends(public_rate_limit)])
Format = Annotated[Literal["json", "xml"], Path(description="json or xml")]
LIMIT = 1000
NINETY_DAYS_MS = 90 * 86_400_000
FORM_FIELDS = ("service_code", "lat", "long", "address_string", "email", "first_name", "last_name", "phone",
               "description", "district", "api_key", "jurisdiction_id", "device_id", "account_id", "media_url",
               "address_id")
LIMITS = {"address_string": 200, "email": 120, "first_name": 60, "last_name": 60, "phone": 30}


W3C_PATTERN = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
               r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$")
CODES = "|".join(CATEGORIES)
# comma separated lists, as the spec's clients send them (empty: no filter)
CODE_LIST_PATTERN = rf"^(({CODES})(,({CODES}))*)?$"
STATUS_LIST_PATTERN = r"^((open|closed)(,(open|closed))*)?$"
ID = CODE_PATTERN.strip("^$")
ID_LIST_PATTERN = rf"^({ID}(,{ID}){{0,{LIMIT - 1}}})?$"
MIN_DESCRIPTION = 5

POST_SCHEMA = {"type": "object", "required": ["service_code", "description"],
               "anyOf": [{"required": ["lat", "long"]}, {"required": ["district"]}], "properties": {
    "service_code": {"type": "string", "enum": list(CATEGORIES)},
    "lat": {"type": "number", "minimum": -90, "maximum": 90},
    "long": {"type": "number", "minimum": -180, "maximum": 180},
    "district": {"type": "string", "description": "a district slug of the city profile, when there is no lat/long"},
    "address_string": {"type": "string", "maxLength": 200},
    "description": {"type": "string", "minLength": MIN_DESCRIPTION, "maxLength": MAX_DESCRIPTION},
    "email": {"type": "string", "maxLength": 120}, "first_name": {"type": "string", "maxLength": 60},
    "last_name": {"type": "string", "maxLength": 60}, "phone": {"type": "string", "maxLength": 30},
    "media": {"type": "string", "format": "binary", "description": "a JPEG, PNG or WebP photo"}}}
NULLABLE_TEXT = {"type": ["string", "null"]}
REQUEST_SCHEMA = {"type": "object", "required": ["service_request_id", "status", "service_code"], "properties": {
    "service_request_id": {"type": "string", "pattern": CODE_PATTERN}, "status": {"enum": ["open", "closed"]},
    "status_notes": NULLABLE_TEXT, "service_name": {"type": "string"}, "service_code": {"enum": list(CATEGORIES)},
    "description": NULLABLE_TEXT, "agency_responsible": {"type": "string"}, "service_notice": NULLABLE_TEXT,
    "requested_datetime": {"type": "string"}, "updated_datetime": {"type": "string"},
    "expected_datetime": {"type": "null"},
    "address": {"type": "string"}, "address_id": {"type": "null"}, "zipcode": {"type": "null"},
    "lat": {"type": ["number", "null"]}, "long": {"type": ["number", "null"]}, "media_url": NULLABLE_TEXT}}
SERVICE_SCHEMA = {"type": "object", "required": ["service_code", "service_name"], "properties": {
    "service_code": {"enum": list(CATEGORIES)}, "service_name": {"type": "string"}, "description": {"type": "string"},
    "metadata": {"type": "boolean"}, "type": {"enum": ["realtime", "batch", "blackbox"]},
    "keywords": {"type": "string"}, "group": {"type": "string"}}}
CREATED_SCHEMA = {"type": "object", "required": ["service_request_id"], "properties": {
    "service_request_id": {"type": "string", "pattern": CODE_PATTERN}, "service_notice": {"type": "string"},
    "account_id": {"type": "null"}}}
ERRORS_SCHEMA = {"type": "array", "items": {"type": "object", "required": ["code", "description"], "properties": {
    "code": {"type": "integer"}, "description": {"type": "string"}}}}


def _content(json_schema: dict[str, Any]) -> dict[str, Any]:
    """JSON (`.json`) or XML (`.xml`): the path says which."""
    return {"application/json": {"schema": json_schema}, "text/xml": {"schema": {"type": "string"}}}


def _responses(ok: dict[int, tuple[str, dict[str, Any]]], *errors: int) -> dict[int | str, dict[str, Any]]:
    """The spec's answers: the rows as a list, errors as the spec's error list; 429 from the public rate limit
    (the API's error body) or from the filing limits (the spec's list)."""
    found: dict[int | str, dict[str, Any]] = {
        status: {"description": what, "content": _content({"type": "array", "items": item})}
        for status, (what, item) in ok.items()}
    for status in errors:
        found[status] = {"description": ERROR_TEXTS[status], "content": _content(ERRORS_SCHEMA)}
    found[429] = {"description": "too many requests (see Retry-After), or filing limits reached",
                  "content": {"application/json": {"schema": {}}, "text/xml": {"schema": {"type": "string"}}}}
    return found


ERROR_TEXTS = {400: "the spec's error list: what was wrong with the request", 404: "no such service request",
               413: "the photo is too large"}


def document(schema: dict[str, Any], slugs: tuple[str, ...]) -> dict[str, Any]:
    """The OpenAPI schema with what only the city profile knows: the district slugs a form may name, an example
    request, and the link from a filed request to reading it (its id is the tracking code)."""
    post = schema["paths"]["/open311/v2/requests.{fmt}"]["post"]
    for media in post["requestBody"]["content"].values():
        media["schema"]["properties"]["district"]["enum"] = list(slugs)
        media["example"] = {"service_code": "leak", "district": slugs[0], "description": "pipa bocor di depan rumah"}
    post["responses"]["201"]["links"] = {"ReadTheRequest": {
        "operationId": GET_ONE, "parameters": {"request_id": "$response.body#/0/service_request_id",
                                               "fmt": "$request.path.fmt"}}}
    return schema


GET_ONE = "open311_get_request"


class Open311Error(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code


def _xml(root: str, item: str, rows: list[dict[str, Any]]) -> bytes:
    top = ElementTree.Element(root)
    for row in rows:
        node = ElementTree.SubElement(top, item)
        for key, value in row.items():
            ElementTree.SubElement(node, key).text = "" if value is None else \
                str(value).lower() if isinstance(value, bool) else str(value)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(top, encoding="utf-8")


def _answer(fmt: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200) -> Response:
    if fmt == "xml":
        return Response(_xml(root, item, rows), status, media_type="text/xml; charset=utf-8")
    import orjson

    return Response(orjson.dumps(rows), status, media_type="application/json")


def _error(fmt: str, error: Open311Error) -> Response:
    return _answer(fmt, "errors", "error", [{"code": error.code, "description": str(error)}], error.code)


def _language(services: ApiServices, accept_language: str | None) -> str:
    spec = services.settings.city.spec
    return negotiate(accept_language, list(spec.languages), spec.default_language)


def _w3c(services: ApiServices, t_ms: int) -> str:
    zone = services.settings.city.zone
    return dt.datetime.fromtimestamp(t_ms / 1000, zone).isoformat(timespec="seconds")


def public_request(services: ApiServices, c: Complaint, lang: str, base_url: str) -> dict[str, Any]:
    """The spec's fields, public only: moderated text, never a contact."""
    approved = c.moderation == "approved"
    district = services.settings.city.district(c.district).name(lang)
    return {
        "service_request_id": c.id, "status": c.status, "status_notes": c.status_notes or None,
        "service_name": t(f"complaint.category.{c.service_code}", lang), "service_code": c.service_code,
        "description": c.description if approved else None,
        "agency_responsible": t(f"complaint.agency.{c.kind or 'city'}", lang), "service_notice": None,
        "requested_datetime": _w3c(services, c.requested_ms), "updated_datetime": _w3c(services, c.updated_ms),
        "expected_datetime": None,
        "address": (c.address_string if approved and c.address_string else district), "address_id": None,
        "zipcode": None, "lat": c.lat if approved else None, "long": c.lon if approved else None,
        "media_url": f"{base_url}public/complaints/{c.id}/photo.jpg" if approved and c.has_photo else None,
    }


@router.get("/services.{fmt}", summary="Open311: the complaint categories",
            responses=_responses({200: ("the categories", SERVICE_SCHEMA)}))
def services_list(fmt: Format, services: Services,
                  accept_language: Annotated[str | None, Header(max_length=500)] = None) -> Response:
    lang = _language(services, accept_language)
    rows = [{"service_code": code, "service_name": t(f"complaint.category.{code}", lang),
             "description": t(f"complaint.category_help.{code}", lang), "metadata": False, "type": "realtime",
             "keywords": code.replace("_", " "), "group": t(f"complaint.agency.{kind or 'city'}", lang)}
            for code, kind in CATEGORIES.items()]
    return _answer(fmt, "services", "service", rows)


def _number(form: Any, name: str, low: float, high: float) -> float | None:
    raw = form.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise Open311Error(400, f"{name} must be a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise Open311Error(400, f"{name} must be between {low} and {high}")
    return value


async def _parse(request: Request, services: ApiServices) -> NewComplaint:
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 4,
                                  max_part_size=services.settings.api_citizen_photo_max_bytes + 1024)
    except Exception as exc:  # a malformed or oversized body: the citizen's app sent something broken
        raise Open311Error(400, f"the body is not a form we can read: {str(exc)[:100]}") from None
    texts = {k: v for k, v in form.items() if isinstance(v, str)}
    code = texts.get("service_code", "")
    if code not in CATEGORIES:
        raise Open311Error(400, f"service_code must be one of {', '.join(CATEGORIES)}")
    lat, lon = _number(form, "lat", -90, 90), _number(form, "long", -180, 180)
    profile = services.settings.city
    if "district" in texts and texts["district"] not in profile.slugs:
        raise Open311Error(400, f"district must be one of {', '.join(profile.slugs)}")
    if lat is not None and lon is not None:
        district = profile.district_at(lat, lon)
        if district is None:
            raise Open311Error(400, "lat/long is outside the city")
    elif texts.get("district") in profile.slugs:
        district, lat, lon = texts["district"], None, None
    else:
        raise Open311Error(400, f"give lat and long, or district (one of {', '.join(profile.slugs)})")
    for name, limit in (("description", MAX_DESCRIPTION), *LIMITS.items()):
        # refused, not cut: the citizen's app should know (a browser may send a textarea's newlines as CRLF)
        if len(texts.get(name, "").replace("\r\n", "\n")) > limit:
            raise Open311Error(400, f"{name} is longer than {limit} characters")
    description = clean_text(texts.get("description", ""), MAX_DESCRIPTION)
    if len(description) < MIN_DESCRIPTION:
        raise Open311Error(400, f"description: say what is wrong (at least {MIN_DESCRIPTION} characters)")
    fields = {k: clean_text(texts.get(k, ""), n).replace("\n", " ") for k, n in LIMITS.items()}
    media = form.get("media")
    photo = None
    if isinstance(media, UploadFile):
        try:
            photo = clean_photo(await media.read(services.settings.api_citizen_photo_max_bytes + 1),
                                services.settings.api_citizen_photo_max_bytes)
        except PhotoRefused as exc:
            raise Open311Error(413 if exc.code == "photo_too_large" else 400, f"{exc.code}: {exc}") from None
    return NewComplaint(service_code=code, district=district, description=description, lat=lat, lon=lon,
                        photo=photo, **fields)


@router.post("/requests.{fmt}", status_code=201, summary="Open311: file a complaint (a form; photo as `media`)",
             responses=_responses({201: ("filed: its id is the tracking code", CREATED_SCHEMA),
                                   200: ("a duplicate of an earlier request: its id", CREATED_SCHEMA)}, 400, 413),
             openapi_extra={"requestBody": {"content": {
                 "application/x-www-form-urlencoded": {"schema": POST_SCHEMA},
                 "multipart/form-data": {"schema": POST_SCHEMA}}}})
async def create_request(fmt: Format, request: Request, services: Services) -> Response:
    try:
        new = await _parse(request, services)
        client = request.client.host if request.client else "unknown"
        import asyncio

        complaint, created = await asyncio.to_thread(services.complaints.create, new, client)
        if created:
            await asyncio.to_thread(services.linker.on_complaint, complaint.id)
    except Open311Error as exc:
        return _error(fmt, exc)
    except ComplaintRefused as exc:
        return _error(fmt, Open311Error(exc.status, f"{exc.code}: {exc}"))
    notice = "" if created else "duplicate: the same report was filed before; this is its id"
    return _answer(fmt, "service_requests", "request",
                   [{"service_request_id": complaint.id, "service_notice": notice, "account_id": None}],
                   201 if created else 200)


def _since(services: ApiServices, value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(W3C_PATTERN, value):
            raise ValueError(value)
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C datetime, e.g. 2026-12-01T00:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=services.settings.city.zone)
    return int(when.timestamp() * 1000)


def _listed(value: str | None, pattern: str, name: str) -> list[str]:
    """A comma separated filter, checked against the pattern the schema gives (the spec's 400 otherwise)."""
    if not value:
        return []
    if not re.fullmatch(pattern, value):
        raise Open311Error(400, f"{name}: a comma separated list, see the schema")
    return value.split(",")


def _documented(pattern: str, description: str) -> Any:
    """A query value whose pattern the schema shows and the route checks itself (the spec's error list)."""
    return Query(description=description, json_schema_extra={"pattern": pattern})


IdsQuery = Annotated[str | None, _documented(ID_LIST_PATTERN, "ids, comma separated")]
CodesQuery = Annotated[str | None, _documented(CODE_LIST_PATTERN, "categories, comma separated")]
DateQuery = Annotated[str | None, _documented(W3C_PATTERN, "a W3C datetime, e.g. 2026-12-01T00:00:00Z")]
StatusQuery = Annotated[str | None, _documented(STATUS_LIST_PATTERN, "open, closed or both, comma separated")]


@router.get("/requests.{fmt}", summary="Open311: complaints, newest first (90 days unless dates are given)",
            responses=_responses({200: ("the requests, public fields only", REQUEST_SCHEMA)}, 400))
def list_requests(fmt: Format, request: Request, services: Services, service_request_id: IdsQuery = None,
                  service_code: CodesQuery = None, start_date: DateQuery = None, end_date: DateQuery = None,
                  status: StatusQuery = None,
                  accept_language: Annotated[str | None, Header(max_length=500)] = None) -> Response:
    lang = _language(services, accept_language)
    try:
        ids = _listed(service_request_id, ID_LIST_PATTERN, "service_request_id")
        codes = _listed(service_code, CODE_LIST_PATTERN, "service_code")
        statuses = _listed(status, STATUS_LIST_PATTERN, "status")
        end = _since(services, end_date, "end_date")
        start = _since(services, start_date, "start_date")
        if not ids and start is None:
            start = (end or int(dt.datetime.now(dt.UTC).timestamp() * 1000)) - NINETY_DAYS_MS
        found, _ = services.complaints.find(ids or None, codes or None, statuses or None, start, end, limit=LIMIT)
    except Open311Error as exc:
        return _error(fmt, exc)
    rows = [public_request(services, c, lang, str(request.base_url)) for c in found]
    return _answer(fmt, "service_requests", "request", rows)


@router.get("/requests/{request_id}.{fmt}", summary="Open311: one complaint by its id (the tracking code)",
            operation_id=GET_ONE,
            responses=_responses({200: ("the request, public fields only", REQUEST_SCHEMA)}, 404))
def get_request(request_id: Annotated[str, Path(max_length=40, description="the tracking code (any case)")],
                fmt: Format, request: Request, services: Services,
                accept_language: Annotated[str | None, Header(max_length=500)] = None) -> Response:
    lang = _language(services, accept_language)
    code = request_id.strip().upper()  # as a citizen types it; anything else is a code that does not exist
    try:
        if not re.fullmatch(CODE_PATTERN, code):
            raise LookupError(code)
        complaint = services.complaints.get(code)
    except LookupError:
        return _error(fmt, Open311Error(404, f"no service request {request_id[:20]!r}"))
    return _answer(fmt, "service_requests", "request", [public_request(services, complaint, lang,
                                                                       str(request.base_url))])
