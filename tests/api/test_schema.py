"""The OpenAPI schema says exactly what the API accepts (schemathesis holds the
running API to it in test_schemathesis.py): kinds, metrics, device ids and
durations as enums and patterns, the 400 of a body that is not JSON
documented, `Allow` naming every method of a path, and key names ASCII in the
regex and in the code alike."""

import re

from edge import contract


def _spec(api) -> dict:
    with api.client() as c:
        return c.get("/openapi.json").json()


def _param(operation: dict, name: str) -> dict:
    return next(p for p in operation["parameters"] if p["name"] == name)["schema"]


def _enum(schema: dict) -> list:
    options = schema.get("anyOf", [schema])
    return next(o["enum"] for o in options if "enum" in o)


def test_openapi_is_complete(api):
    spec = _spec(api)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation.get("tags"), f"{method} {path} has no tag"
    assert spec["info"]["description"].startswith("The city telemetry platform's API")


def test_kinds_metrics_ids_and_durations_are_in_the_schema(api):
    paths = _spec(api)["paths"]
    history = paths["/readings/{device_id}/history"]["get"]
    assert _enum(_param(history, "metric")) == list(contract.METRICS)
    assert re.fullmatch(_param(history, "device_id")["pattern"], "wtr-0001")
    every = re.compile(_param(history, "every")["anyOf"][0]["pattern"])
    assert every.search("5m") and every.search("999d") and not every.search("9999999w")
    assert _enum(_param(paths["/alerts"]["get"], "kind")) == list(contract.KINDS)
    assert _enum(_param(paths["/devices"]["get"], "kind")) == list(contract.KINDS)


def test_every_json_body_route_documents_400(api):
    for path, item in _spec(api)["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], f"{method.upper()} {path}"


def test_key_names_are_ascii_in_the_schema_and_the_code(api):
    schema = _spec(api)["components"]["schemas"]["ApiKeyCreate"]["properties"]["name"]
    assert "\\w" not in schema["pattern"]
    with api.client("admin") as c:
        assert c.post("/keys", json={"name": "Siti Rahma", "role": "operator"}).status_code == 201
        assert c.post("/keys", json={"name": "Sití", "role": "operator"}).status_code == 422
        assert c.post("/keys", json={"name": "Sití", "role": "operator"}).json()["error"] == "invalid_input"


def test_allow_names_every_method_of_the_path(api):
    with api.client("admin") as c:
        for path, methods in (("/devices", {"GET", "POST"}), ("/keys", {"GET", "POST"}),
                              ("/keys/0badc0de", {"PATCH", "DELETE"})):
            r = c.options(path)
            assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == methods, (path, r.headers)


def test_a_body_that_is_not_json_is_400_and_only_spaces_do_not_resolve(api):
    with api.client("operator") as c:
        r = c.post("/alerts/inc-x/resolve", content=b"\xe9<e9", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
        for note in ("   ", "\t\n ", ""):
            r = c.post("/alerts/inc-x/resolve", json={"note": note})
            assert r.status_code == 422 and "note" in r.json()["message"], note
