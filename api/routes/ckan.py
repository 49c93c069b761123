"""CKAN-compatible action API (read only) over the open-data catalogue, so a CKAN harvester (the national
portal runs CKAN) or any CKAN client takes the catalogue as it is.

`/api/3/action/<action>` and `/api/action/<action>`, GET with query parameters or POST with a JSON
object, answered in CKAN's envelope `{"help", "success", "result"}`; errors in CKAN's shape
`{"help", "success": false, "error": {"__type", "message", ...}}` with CKAN's status codes (404 Not Found
Error, 409 Validation Error, 400 Search Query Error or Bad Request, 403 Authorization Error for any write).
Actions: package_list, package_show, package_search, current_package_list_with_resources,
organization_list, organization_show, group_list, tag_list, license_list, status_show, site_read,
help_show. Pages are at most MAX_ROWS (CKAN's own `ckan.search.rows_max` default); more is a
Validation Error, not a silent cut.
"""

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api.opendata import catalogue, datasets, policy
from api.params import NOT_BLANK_PATTERN
from api.ratelimit import opendata_rate_limit
from api.services import ApiServices, Services

# CKAN's own envelope and errors, held to CKAN by a real CKAN client (tests/api/test_opendata_catalogue.py);
# the known actions are also in the OpenAPI schema (DOCUMENTED below), so schemathesis fuzzes them
router = APIRouter(tags=["ckan"], dependencies=[Depends(opendata_rate_limit)])

MAX_ROWS = 1000
DIGITS = re.compile(r"^[0-9]{1,20}$")
MAX_BODY_KEYS = 50
MAX_QUERY, MAX_SORT = 500, 100  # characters of q and fq, of sort
CKAN_VERSION = "2.10.4"  # the action API version these answers follow
FQ_TERM = re.compile(r'^(-?)(name|tags|organization|res_format|license_id|metadata_modified):'
                     r'("[^"]*"|\[[^\]]*\]|[^\s"]+)$')


class QueryText(str):
    """A value from the query string (text whatever it says), told apart from a JSON body's strings."""


class CkanError(Exception):
    def __init__(self, status: int, kind: str, message: str, **fields: Any):
        super().__init__(message)
        self.status, self.kind, self.message, self.fields = status, kind, message, fields


def _help(request: Request, action: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/3/action/help_show?name={action}"


def _int(params: dict[str, Any], name: str, default: int, maximum: int | None = None) -> int:
    """A natural number: a JSON int, or digits only in a query string (all a query string has), else 409."""
    value = params.get(name, default)
    if isinstance(value, QueryText) and DIGITS.match(value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():  # JSON's 34.0 is an integer (JSON Schema says so too)
        value = int(value)
    if isinstance(value, QueryText) and value.startswith("-") and DIGITS.match(value[1:]):
        raise CkanError(409, "Validation Error", "Validation Error", **{name: ["Must be a natural number"]})
    if isinstance(value, bool) or not isinstance(value, int):
        raise CkanError(409, "Validation Error", "Validation Error", **{name: ["Invalid integer"]})
    if value < 0:
        raise CkanError(409, "Validation Error", "Validation Error", **{name: ["Must be a natural number"]})
    if maximum is not None and value > maximum:
        raise CkanError(409, "Validation Error", "Validation Error", **{name: [f"Must be at most {maximum}"]})
    return value


def _str(params: dict[str, Any], name: str, longest: int) -> str:
    value = params.get(name, "")
    if not isinstance(value, str):  # JSON's null or a number too
        raise CkanError(409, "Validation Error", "Validation Error", **{name: ["Must be a string"]})
    if len(value) > longest:
        raise CkanError(409, "Validation Error", "Validation Error", **{name: [f"At most {longest} characters"]})
    return value


def _packages(services: ApiServices, base: str) -> list[dict[str, Any]]:
    return [catalogue.ckan_package(services, catalogue.describe(services, d, base), base)
            for d in datasets.open_datasets(services.settings.city)]


def _text(package: dict[str, Any]) -> str:
    words = [package["name"], *package["title_translated"].values(), *package["notes_translated"].values(),
             *(tag["name"] for tag in package["tags"])]
    return " ".join(words).lower()


def _fq_match(package: dict[str, Any], field: str, value: str) -> bool:
    value = value.strip('"')
    if field == "name":
        return package["name"] == value
    if field == "tags":
        return any(tag["name"] == value for tag in package["tags"])
    if field == "organization":
        return package["owner_org"] == value
    if field == "res_format":
        return any(r["format"].lower() == value.lower() for r in package["resources"])
    if field == "license_id":
        return package["license_id"] == value
    # metadata_modified:[2026-01-01T00:00:00Z TO *]
    low, _, high = value.strip("[]").partition(" TO ")
    modified = package["metadata_modified"] or ""
    return (low in ("*", "") or modified >= low.rstrip("Z")) and (high in ("*", "") or modified <= high)


def _search(services: ApiServices, base: str, params: dict[str, Any]) -> dict[str, Any]:
    rows = _int(params, "rows", 10, MAX_ROWS)
    start = _int(params, "start", 0, 1_000_000)
    if len(str(params.get("q", ""))) > MAX_QUERY or len(str(params.get("fq", ""))) > MAX_QUERY:
        raise CkanError(400, "Search Query Error", f"Search Query Error: q and fq are at most {MAX_QUERY} characters")
    q, fq = _str(params, "q", MAX_QUERY).strip(), _str(params, "fq", MAX_QUERY).strip()
    found = _packages(services, base)
    if q and q != "*:*":
        words = [w.lower() for w in re.split(r"\s+", q) if w]
        found = [p for p in found if all(w in _text(p) for w in words)]
    for term in (t for t in re.split(r"\s+(?:AND\s+)?", fq) if t and t != "*:*"):
        match = FQ_TERM.match(term)
        if not match:
            raise CkanError(400, "Search Query Error",
                            f"Search Query Error: cannot filter on {term[:60]!r}; fields: name, tags, organization, "
                            "res_format, license_id, metadata_modified")
        negate, field, value = match.groups()
        found = [p for p in found if _fq_match(p, field, value) != bool(negate)]
    sort = _str(params, "sort", MAX_SORT) or "score desc, metadata_modified desc"
    if sort.startswith("metadata_modified"):
        found.sort(key=lambda p: p["metadata_modified"] or "", reverse=sort.endswith("desc"))
    elif sort.startswith(("name", "title_string")):
        found.sort(key=lambda p: p["name"], reverse=sort.endswith("desc"))
    return {"count": len(found), "sort": sort, "facets": {}, "search_facets": {},
            "results": found[start:start + rows]}


def _package_show(services: ApiServices, base: str, params: dict[str, Any]) -> dict[str, Any]:
    wanted = str(params.get("id", "") or params.get("name", "") or "")
    if not wanted:
        raise CkanError(409, "Validation Error", "Validation Error", id=["Missing value"])
    try:
        dataset = datasets.get(services.settings.city, wanted)
    except (datasets.UnknownDataset, policy.Closed):
        raise CkanError(404, "Not Found Error", "Not found") from None
    return catalogue.ckan_package(services, catalogue.describe(services, dataset, base), base)


def _package_list(services: ApiServices, base: str, params: dict[str, Any]) -> list[str]:
    names = [d.id for d in datasets.open_datasets(services.settings.city)]
    offset = _int(params, "offset", 0, 1_000_000)
    limit = _int(params, "limit", MAX_ROWS, MAX_ROWS)
    return names[offset:offset + limit]


def _current(services: ApiServices, base: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    offset = _int(params, "offset", 0, 1_000_000)
    limit = _int(params, "limit", MAX_ROWS, MAX_ROWS)
    return _packages(services, base)[offset:offset + limit]


def _organization_list(services: ApiServices, base: str, params: dict[str, Any]) -> list[Any]:
    all_fields = params.get("all_fields", False)
    if isinstance(all_fields, QueryText):
        all_fields = {"true": True, "false": False}.get(all_fields, all_fields)
    if not isinstance(all_fields, bool):  # a JSON true/false, or true/false in a query string
        raise CkanError(409, "Validation Error", "Validation Error", all_fields=["Must be true or false"])
    return [catalogue.ckan_organization(services, base)] if all_fields else [catalogue.ORGANIZATION]


def _organization_show(services: ApiServices, base: str, params: dict[str, Any]) -> dict[str, Any]:
    if str(params.get("id", "")) != catalogue.ORGANIZATION:
        raise CkanError(404, "Not Found Error", "Not found")
    return catalogue.ckan_organization(services, base)


def _tag_list(services: ApiServices, base: str, params: dict[str, Any]) -> list[str]:
    return sorted({tag["name"] for p in _packages(services, base) for tag in p["tags"]})


def _license_list(services: ApiServices, base: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": catalogue.LICENCE_ID, "title": catalogue.LICENCE_TITLE, "url": catalogue.LICENCE_URL,
             "od_conformance": "approved", "osd_conformance": "not reviewed", "status": "active",
             "domain_content": True, "domain_data": True, "domain_software": False, "family": ""}]


def _status(services: ApiServices, base: str, params: dict[str, Any]) -> dict[str, Any]:
    from telemetry_shared.i18n import t

    city = services.settings.city
    return {"site_title": t("opendata.catalog.title", city.spec.default_language, city=city.name),
            "site_description": t("opendata.catalog.description", city.spec.default_language),
            "site_url": base, "ckan_version": CKAN_VERSION, "error_emails_to": None,
            "locale_default": city.spec.default_language, "extensions": ["dcat"]}


def _help_show(services: ApiServices, base: str, params: dict[str, Any]) -> str:
    name = str(params.get("name", ""))
    if name not in ACTIONS:
        raise CkanError(404, "Not Found Error", "Action function not found")
    return f"{name}: read only, as CKAN's action of that name (see api/routes/ckan.py)"


ACTIONS: dict[str, Callable[[ApiServices, str, dict[str, Any]], Any]] = {
    "package_list": _package_list, "package_show": _package_show, "package_search": _search,
    "current_package_list_with_resources": _current, "organization_list": _organization_list,
    "organization_show": _organization_show, "group_list": lambda s, b, p: [], "tag_list": _tag_list,
    "license_list": _license_list, "status_show": _status, "site_read": lambda s, b, p: True,
    "help_show": _help_show,
}
WRITES = re.compile(r"_(create|update|patch|delete|purge)$|^(member_|user_|api_token)")


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {key: QueryText(value) for key, value in request.query_params.items()}
    if request.method == "POST":
        body = await request.body()
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError:
                raise CkanError(400, "Bad Request", "Bad request - JSON Error: could not read the body") from None
            if not isinstance(data, dict) or len(data) > MAX_BODY_KEYS:
                raise CkanError(400, "Bad Request", "Bad request - the body must be a JSON object")
            params |= data
    return params


async def _action(action: str, request: Request, services: Services) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    help_url = _help(request, action[:60])
    try:
        if action not in ACTIONS:
            if WRITES.search(action):
                raise CkanError(403, "Authorization Error", "Access denied: this catalogue is read only")
            raise CkanError(400, "Bad Request", f"Bad request - Action name not known: {action[:60]}")
        params = await _params(request)
        result = ACTIONS[action](services, base, params)
    except CkanError as exc:
        error = {"__type": exc.kind, "message": exc.message} | exc.fields
        return JSONResponse({"help": help_url, "success": False, "error": error}, exc.status)
    return JSONResponse({"help": help_url, "success": True, "result": result})


def _schema_of(params: dict[str, dict[str, Any]], required: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI for one action: the same fields as query parameters (GET) or a JSON object (POST)."""
    query = [{"name": name, "in": "query", "required": name in required, "schema": schema}
             for name, schema in params.items()]
    body = {"type": "object", "properties": params, "required": list(required), "maxProperties": MAX_BODY_KEYS}
    envelope = {"type": "object", "required": ["help", "success"],
                "properties": {"help": {"type": "string"}, "success": {"type": "boolean"}, "result": {},
                               "error": {"type": "object", "required": ["__type", "message"]}}}
    content = {"application/json": {"schema": envelope}}
    responses = {"200": {"description": "CKAN's envelope, success true", "content": content}} | {
        code: {"description": f"CKAN's {kind}", "content": content} for code, kind in (
            ("400", "Bad Request or Search Query Error"), ("404", "Not Found Error"),
            ("409", "Validation Error"))} | {"429": {"description": "too many requests; see Retry-After"}}
    return {"get": {"parameters": query, "responses": responses},
            "post": {"requestBody": {"required": bool(required), "content": {"application/json": {"schema": body}}},
                     "responses": responses}}


_PAGE = {"limit": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
         "offset": {"type": "integer", "minimum": 0, "maximum": 1_000_000}}
_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_BLANK_PATTERN}
# the documented actions and their fields (validated by the actions themselves, in CKAN's error shapes)
DOCUMENTED: dict[str, tuple[dict[str, dict[str, Any]], tuple[str, ...]]] = {
    "package_list": (_PAGE, ()),
    "current_package_list_with_resources": (_PAGE, ()),
    "package_show": ({"id": _NAME}, ("id",)),
    "package_search": ({"q": {"type": "string", "maxLength": MAX_QUERY},
                        "fq": {"type": "string", "maxLength": MAX_QUERY},
                        "rows": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
                        "start": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
                        "sort": {"type": "string", "maxLength": MAX_SORT}}, ()),
    "organization_list": ({"all_fields": {"type": "boolean"}}, ()),
    "organization_show": ({"id": _NAME}, ("id",)),
    "group_list": ({}, ()), "tag_list": ({}, ()), "license_list": ({}, ()), "status_show": ({}, ()),
    "site_read": ({}, ()),
    "help_show": ({"name": _NAME}, ("name",)),
}


def _documented(action: str) -> Callable[..., Any]:
    async def handler(request: Request, services: Services) -> JSONResponse:
        return await _action(action, request, services)
    return handler


# each known action in the OpenAPI schema (so schemathesis holds it to its schema), before the catch-all that
# answers CKAN's 400/403 for other action names; /api/action/... is the same, left out of the schema
for name, (fields, required) in DOCUMENTED.items():
    extra = _schema_of(fields, required)
    for method in ("get", "post"):
        router.add_api_route(f"/api/3/action/{name}", _documented(name), methods=[method.upper()],
                             summary=f"CKAN {name} (read only)", openapi_extra=extra[method],
                             response_class=JSONResponse, operation_id=f"ckan_{name}_{method}")
for prefix in ("/api/3/action", "/api/action"):
    router.add_api_route(prefix + "/{action}", _action, methods=["GET", "POST"], include_in_schema=False,
                         summary="CKAN action API (read only)")

