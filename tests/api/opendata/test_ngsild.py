"""NGSI-LD downloads on the live API with real influxd: one entity per published row, following the FIWARE
Smart Data Models (their schema.json `required` lists, read from the smart-data-models repositories, are
checked below), URN ids, @context, observedAt, the district as a GeoProperty, and nothing the policy holds
back (a district below k, a device id)."""

import datetime as dt
import re

import httpx
import pytest

from tests.api.opendata.conftest import FULL, SPARSE

# schema.json "required" of each model (smart-data-models/dataModel.<subject>/<Type>/schema.json)
REQUIRED = {
    "WaterConsumptionObserved": {"id", "type"},
    "ACMeasurement": {"id", "type", "location", "dateObserved", "phaseType"},
    "TrafficFlowObserved": {"id", "type", "dateObserved"},  # and anyOf refRoadSegment, location, address
    "IndoorEnvironmentObserved": {"id", "type", "dateObserved", "location"},
    "KeyPerformanceIndicator": {"id", "type"},
}
URN = re.compile(r"^urn:ngsi-ld:[A-Za-z]+:[a-z0-9-]+:[a-z0-9_-]+:[a-z0-9-]+:[0-9TZ]+(:[a-z0-9_-]+)?$")


def _month(api, t_ms):
    return dt.datetime.fromtimestamp(t_ms / 1000, api.settings.city.zone).strftime("%Y-%m")


def _entities(api, dataset, period):
    with httpx.Client(base_url=api.url, timeout=30) as c:
        r = c.get(f"/opendata/download/{dataset}/{period}.ngsild")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    return r.json(), r.text


def _check_model(entity):
    assert REQUIRED[entity["type"]] <= set(entity), (entity["type"], REQUIRED[entity["type"]] - set(entity))
    assert URN.match(entity["id"]), entity["id"]
    assert entity["@context"][-1] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    assert "smart-data-models" in entity["@context"][0]
    for name, attribute in entity.items():
        if name not in ("id", "type", "@context"):
            assert attribute["type"] in ("Property", "GeoProperty", "Relationship"), name


@pytest.mark.parametrize("dataset, model, attribute, value", [
    ("traffic-speed_kmh", "TrafficFlowObserved", "averageVehicleSpeed", 30.0),
    ("power-voltage_v", "ACMeasurement", "phaseVoltage", None),
    ("water-flow_lps", "WaterConsumptionObserved", "flowRate", 10.0),
])
def test_readings_as_smart_data_model_entities(open_city, dataset, model, attribute, value):
    api, expected = open_city
    entities, text = _entities(api, dataset, _month(api, expected["last_hour"]))
    assert entities and {e["type"] for e in entities} == {model}
    for entity in entities:
        _check_model(entity)
        assert entity["location"]["type"] == "GeoProperty"
        assert entity["location"]["value"]["type"] in ("Polygon", "MultiPolygon")
        assert entity["areaServed"]["value"] == api.settings.city.district(FULL).name("id")
        prop = entity[attribute]
        assert prop["observedAt"].endswith("Z") and prop["observedAt"] == entity["dateObserved"]["value"]["@value"]
        assert entity["numberOfDevices"]["value"] >= 3  # k: the cell is published
    assert len({e["id"] for e in entities}) == len(entities)  # ids unique
    last = [e for e in entities if e["dateObserved"]["value"]["@value"].startswith(
        dt.datetime.fromtimestamp(expected["last_hour"] / 1000, dt.UTC).strftime("%Y-%m-%dT%H"))]
    if value is not None:
        assert last[0][attribute]["value"] == pytest.approx(value)  # the mean of the sensors: 10 L/s; 20/30/40 km/h
    # below k and device ids never leave
    assert api.settings.city.district(SPARSE).name("id") not in text and SPARSE not in text
    assert not re.search(r"(wtr|pwr|trf)-\d", text)


def test_power_is_single_phase_voltage_in_volts(open_city):
    api, expected = open_city
    entities, _ = _entities(api, "power-voltage_v", _month(api, expected["last_hour"]))
    entity = entities[0]
    assert entity["phaseType"]["value"] == "singlePhase"
    assert set(entity["phaseVoltage"]["value"]) == {"L1"} and entity["phaseVoltage"]["unitCode"] == "VLT"
    assert entity["dateObservedTo"]["value"]["@value"] > entity["dateObservedFrom"]["value"]["@value"]


def test_water_cells_carry_the_district_total(open_city):
    api, expected = open_city
    entities, _ = _entities(api, "water-flow_lps", _month(api, expected["last_hour"]))
    assert {e["flowRateSum"]["value"] for e in entities} == {30.0}  # three meters at 10 L/s
    assert {e["flowRateSum"]["unitCode"] for e in entities} == {"G51"}


def test_complaints_as_key_performance_indicators(open_city):
    api, _ = open_city
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    month = _month(api, now - 4 * 3_600_000)
    entities, text = _entities(api, "complaints-daily", month)
    assert [e["type"] for e in entities] == ["KeyPerformanceIndicator"]
    _check_model(entities[0])
    assert entities[0]["kpiValue"]["value"] == 3 and entities[0]["answered"]["value"] == 1
    for planted in ("PLANTED", "Siti", "081234567890", "Pipa sudah"):
        assert planted not in text


def test_the_catalogue_offers_the_ngsi_ld_files(open_city):
    api, expected = open_city
    month = _month(api, expected["last_hour"])
    with httpx.Client(base_url=api.url) as c:
        page = c.get("/opendata/datasets/traffic-speed_kmh").json()
        package = c.get("/api/3/action/package_show", params={"id": "traffic-speed_kmh"}).json()["result"]
    assert page["downloads"][month]["ngsild"].endswith(f"/opendata/download/traffic-speed_kmh/{month}.ngsild")
    assert any(r["mimetype"] == "application/ld+json" for r in package["resources"])


def test_a_format_not_offered_is_refused(api):
    with httpx.Client(base_url=api.url) as c:
        r = c.get("/opendata/download/traffic-speed_kmh/2026-11.ngsi-v2")
    assert r.status_code in (404, 422) and r.json()["error"] in ("invalid_input", "not_found")
