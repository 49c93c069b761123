"""Every route with every role (and with no key): the answer is exactly
what the route's role binding says, a clean 401 or 403 otherwise."""

import httpx
import pytest

from api.auth import ROLES, STAFF_ROLES
from tests.api.harness import alert, wait_for

PUBLIC = None  # no key needed
ALL = set(STAFF_ROLES)  # a hospital key is refused everywhere but its own hospital's routes
RESPONDERS = {"operator", "engineer", "admin"}
ADMIN = {"admin"}

# (method, OpenAPI path, concrete path, json body, roles allowed)
MATRIX = [
    ("GET", "/health", "/health", None, PUBLIC),
    ("GET", "/ready", "/ready", None, PUBLIC),
    ("GET", "/metrics", "/metrics", None, PUBLIC),
    ("GET", "/control-room", "/control-room", None, PUBLIC),
    ("GET", "/control-room/kpis", "/control-room/kpis", None, PUBLIC),
    ("GET", "/control-room/moderation", "/control-room/moderation", None, PUBLIC),
    ("GET", "/public/city", "/public/city", None, PUBLIC),
    ("GET", "/public/hospitals/beds", "/public/hospitals/beds", None, PUBLIC),
    ("GET", "/public/map", "/public/map", None, PUBLIC),
    ("GET", "/beds", "/beds", None, PUBLIC),
    ("GET", "/complaint", "/complaint", None, PUBLIC),
    ("GET", "/hospital-desk", "/hospital-desk", None, PUBLIC),
    ("GET", "/city", "/city", None, PUBLIC),
    ("GET", "/data", "/data", None, PUBLIC),
    ("GET", "/opendata/catalog.jsonld", "/opendata/catalog.jsonld", None, PUBLIC),
    ("GET", "/opendata/datasets", "/opendata/datasets", None, PUBLIC),
    ("GET", "/opendata/datasets/{dataset_id}", "/opendata/datasets/complaints-daily", None, PUBLIC),
    ("GET", "/public/summary/beds", "/public/summary/beds", None, PUBLIC),
    ("GET", "/public/summary/complaints", "/public/summary/complaints", None, PUBLIC),
    ("GET", "/public/summary/power", "/public/summary/power", None, PUBLIC),
    ("GET", "/public/summary/traffic", "/public/summary/traffic", None, PUBLIC),
    ("GET", "/public/summary/water", "/public/summary/water", None, PUBLIC),
    ("GET", "/keys", "/keys", None, ADMIN),
    ("POST", "/keys", "/keys", {"name": "new one", "role": "technician"}, ADMIN),
    ("DELETE", "/keys/{key_id}", "/keys/0badc0de", None, ADMIN),
    ("PATCH", "/keys/{key_id}", "/keys/0badc0de", {"role": "operator"}, ADMIN),
    ("GET", "/readings/latest", "/readings/latest", None, ALL),
    ("GET", "/readings/{device_id}/history", "/readings/wtr-0001/history?metric=flow_lps", None, ALL),
    ("GET", "/readings/aggregates", "/readings/aggregates?kind=water&metric=flow_lps", None, ALL),
    ("GET", "/alerts", "/alerts", None, ALL),
    ("GET", "/alerts/stream", "/alerts/stream", None, ALL),
    ("GET", "/alerts/{alert_id}", "/alerts/inc-roles", None, ALL),
    ("POST", "/alerts/{alert_id}/ack", "/alerts/inc-roles/ack", {"note": "seen"}, RESPONDERS),
    ("POST", "/alerts/{alert_id}/assign", "/alerts/inc-roles/assign", {"assignee": "Rina"}, RESPONDERS),
    ("POST", "/alerts/{alert_id}/resolve", "/alerts/inc-roles/resolve", {"note": "done"}, RESPONDERS),
    ("POST", "/alerts/{alert_id}/shelve", "/alerts/inc-roles/shelve", {"minutes": 5, "reason": "known"},
     {"operator", "admin"}),
    ("POST", "/alerts/{alert_id}/unshelve", "/alerts/inc-roles/unshelve", {}, {"operator", "admin"}),
    ("GET", "/alarms/state", "/alarms/state", None, ALL),
    ("GET", "/alarms/kpis", "/alarms/kpis", None, ALL),
    ("GET", "/alarms/audit", "/alarms/audit", None, ALL),
    ("GET", "/maintenance", "/maintenance", None, ALL),
    ("GET", "/alarms/tuning", "/alarms/tuning", None, ALL),
    ("POST", "/alarms/tuning/propose", "/alarms/tuning/propose", None, {"engineer", "admin"}),
    ("POST", "/alarms/tuning/{tuning_id}/{action}", "/alarms/tuning/1/approve", {}, {"engineer", "admin"}),
    ("GET", "/fleet/devices", "/fleet/devices", None, ALL),
    ("GET", "/fleet/silent", "/fleet/silent", None, ALL),
    ("GET", "/fleet/districts", "/fleet/districts", None, ALL),
    ("GET", "/network/dmas", "/network/dmas", None, ALL),
    ("GET", "/network/dmas/{network_id}", "/network/dmas/dma-roles", None, ALL),
    ("PUT", "/network/dmas/{network_id}", "/network/dmas/dma-roles", {"inlets": ["wtr-0001"]}, {"engineer", "admin"}),
    ("DELETE", "/network/dmas/{network_id}", "/network/dmas/dma-none", None, {"engineer", "admin"}),
    ("GET", "/network/feeders", "/network/feeders", None, ALL),
    ("GET", "/network/feeders/{network_id}", "/network/feeders/fdr-roles", None, ALL),
    ("PUT", "/network/feeders/{network_id}", "/network/feeders/fdr-roles", {"transformer": "pwr-0001"},
     {"engineer", "admin"}),
    ("DELETE", "/network/feeders/{network_id}", "/network/feeders/fdr-none", None, {"engineer", "admin"}),
    ("GET", "/reports/weekly", "/reports/weekly?week=2026-W02", None, ALL),
    ("GET", "/reports/weekly.csv", "/reports/weekly.csv?week=2026-W02&section=water", None, ALL),
    ("GET", "/control-room/report", "/control-room/report", None, PUBLIC),
]
# the CKAN actions (api/routes/ckan.py), open to anyone, GET with a query and POST with a JSON object
CKAN_ARGS = {"package_show": {"id": "complaints-daily"}, "organization_show": {"id": "city"},
             "help_show": {"name": "package_list"}}
CKAN_ACTIONS = ("package_list", "current_package_list_with_resources", "package_show", "package_search",
                "organization_list", "organization_show", "group_list", "tag_list", "license_list", "status_show",
                "site_read", "help_show")
for _action in CKAN_ACTIONS:
    _args = CKAN_ARGS.get(_action, {})
    _query = "?" + "&".join(f"{k}={v}" for k, v in _args.items()) if _args else ""
    MATRIX += [("GET", f"/api/3/action/{_action}", f"/api/3/action/{_action}{_query}", None, PUBLIC),
               ("POST", f"/api/3/action/{_action}", f"/api/3/action/{_action}", _args, PUBLIC)]
# tested in test_device*.py, test_hospitals.py, test_open311.py
OTHER_OWNERS = ("/devices", "/hospitals", "/complaints")
CITIZENS_PUBLIC = ("/open311", "/public/complaints",  # open to citizens: tests/api/test_open311.py
                   "/opendata/download")  # open files (an empty one for a period with no data): tests/api/opendata/


def call(client: httpx.Client, method: str, path: str, body) -> int:
    if path == "/alerts/stream":
        with client.stream(method, path) as response:
            return response.status_code
    return client.request(method, path, json=body).status_code


@pytest.fixture
def seeded(api, analytics):
    from telemetry_shared.registry import DeviceNew

    api.services.registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    analytics.publish(alert("inc-roles"))
    wait_for(lambda: api.services.alerts.store.find()[1] == 1)
    return api


def test_every_route_is_in_the_matrix(api):
    with api.client() as c:
        schema = c.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, item in schema["paths"].items() for m in item
                  if not p.startswith(OTHER_OWNERS + CITIZENS_PUBLIC)}
    assert operations == {(m, p) for m, p, *_ in MATRIX}


@pytest.mark.parametrize("method,route,path,body,allowed", MATRIX, ids=[f"{m} {r}" for m, r, *_ in MATRIX])
def test_route_with_every_role(seeded, method, route, path, body, allowed):
    api = seeded
    for role in [None, *ROLES]:
        with api.client(role) as c:
            status = call(c, method, path, body)
        if allowed is PUBLIC:
            assert status < 400 or status == 503, (role, status)  # /ready may say "not ready"
        elif role is None:
            assert status == 401, (role, status)
        elif role in allowed:
            assert status not in (401, 403), (role, status)
            assert status < 500
        else:
            assert status == 403, (role, status)


def test_refusals_are_clean_json(seeded):
    api = seeded
    with api.client() as c:
        r = c.get("/alerts")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"error": "unauthorized", "message": "missing API key: send `Authorization: Bearer <key>`",
                            "detail": None}
        for bad in ["Bearer nonsense", "Bearer city_x_y", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 5000,
                    "Bearer " + api.keys["admin"][:-1] + ("X" if api.keys["admin"][-1] != "X" else "Y")]:
            r = c.get("/alerts", headers={"Authorization": bad})
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", bad
    with api.client("technician") as c:
        r = c.post("/alerts/inc-roles/ack", json={})
        assert r.status_code == 403
        assert r.json()["message"] == ("this needs the role admin or engineer or operator; "
                                       "the key 'technician-ana' has the role technician")


def test_other_owners_routes_refuse_without_a_key(api):
    with api.client() as c:
        schema = c.get("/openapi.json").json()
        for path, item in schema["paths"].items():
            if path.startswith(OTHER_OWNERS):
                concrete = path.replace("{device_id}", "wtr-0001").replace("{complaint_id}", "PGD-23456789")
                for method in item:
                    assert c.request(method.upper(), concrete).status_code == 401, (method, path)


def test_a_revoked_key_stops_working_at_once(api):
    created = api.services.keys.create("temp", "operator")
    with api.client("admin") as admin, httpx.Client(base_url=api.url,
                                                    headers={"Authorization": f"Bearer {created.key}"}) as temp:
        assert temp.get("/alerts").status_code == 200
        assert admin.delete(f"/keys/{created.id}").status_code == 204
        assert temp.get("/alerts").status_code == 401
        assert admin.delete(f"/keys/{created.id}").status_code == 404


def test_keys_are_stored_hashed(api):
    created = api.services.keys.create("hash-check", "engineer")
    secret = created.key.split("_", 2)[2]
    raw = api.settings.api_db_file.read_bytes()
    wal = api.settings.api_db_file.with_name(api.settings.api_db_file.name + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert secret.encode() not in raw
    with api.client("admin") as c:
        listed = c.get("/keys").json()
    assert listed["count"] == len(ROLES) + 1
    assert all("key" not in k and "secret_sha256" not in k for k in listed["data"])
