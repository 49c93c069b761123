"""Hostile input from schemathesis against the /devices routes of the live API
(real Mosquitto behind provisioning), with an admin key: no answer is a 500,
every answer matches the OpenAPI schema, and the broker's password file only
ever holds service accounts and registered, unretired devices."""

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import checks

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance]
_live = {}


@pytest.fixture
def devices_schema(city):
    city.run("add", "--kind", "water", "--district", "bukit-bestari", "--id", "wtr-0001")
    _live["city"] = city
    _live["admin"] = city.key("admin")
    return schemathesis.openapi.from_url(f"{city.api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("devices_schema")


# /live streams for up to timeout_s (a generated value could be an hour); it is tested by hand in test_hostile_input.
@schema.include(path_regex=r"^/devices").exclude(path_regex=r"/live$").parametrize()
@hypothesis.settings(max_examples=6, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_devices_routes_survive_hostile_input(case):
    city = _live["city"]
    auth = {"Authorization": f"Bearer {_live['admin']}"}
    kwargs = case.as_transport_kwargs(base_url=city.api.url, headers=auth)
    body = {"json": kwargs["json"]} if kwargs.get("json") is not None else {}
    if kwargs.get("data") is not None:
        body = {"content": kwargs["data"]}
    response = httpx.request(kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
                             params=kwargs.get("params"), timeout=20, **body)
    case.validate_response(response, headers=auth, checks=CHECKS)
    devices, _ = city.registry.list(limit=1000)
    expected = {d.id for d in devices if d.state != "retired"}
    in_file = {line.split(":")[0] for line in city.mosquitto.passwd.read_text().splitlines()}
    assert {u for u in in_file if not u.startswith("svc-")} == expected

