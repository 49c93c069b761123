"""Public routes are built only from fields made for the public. Every private
field gets a secret marker (registry notes, device ids, positions, firmware,
credentials, device configs, API key names and secrets, alert explanations,
notes and assignees, the service passwords and tokens, notification targets),
then EVERY route that needs no key is read and none of the markers may appear.
The ward's public name is the control: it must appear, so the test sees data."""

import time

import httpx
import pytest

from api.citizens.hospitals import BedsUpdate, HospitalNew, WardNew
from api.opendata import downloads
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.api.harness import alert, wait_for

SECRETS = {
    "note": "feeder; gate code 4711, SIM PIN 0000 zx-note",
    "device": "bld-zx7301",
    "device2": "wtr-zx7302",
    "lat": "0.9187654321",
    "firmware": "fw-zx-9.9.9",
    "credential": "zx-credential-hash",
    "threshold": "777.125",
    "key_name": "zx key owner",
    "alert_text": "zx-explanation behind the gate",
    "ack_note": "zx-ack note: code 4711",
    "assignee": "zx-assignee",
    "resolve_note": "zx-resolved: PIN 0000",
    "mqtt_password": "zx-mqtt-password",
    "influx_password": "zx-influx-password",
    "grafana_token": "zx-grafana-token",
    "webhook": "https://hooks.example.org/zx-webhook-secret",
    "smtp_host": "zx-smtp.example.org",
}
PUBLIC_NAME = "RSUD Raja Ahmad Tabib - Ruang Melati"
COMPLAINT_TEXT = "Air kecil sekali di Jl. Ganet"
CONTACT = {"first_name": "Zxsiti", "last_name": "Zxrahma", "email": "zx-citizen@example.id", "phone": "0812 9999 0001"}


def _public_get_paths(spec: dict) -> list[str]:
    """Every GET operation in the schema that declares no security: the routes anyone may call."""
    paths = []
    for path, item in spec["paths"].items():
        if path.startswith(("/open311/", "/public/complaints/")):
            continue  # citizens' complaints: tests/api/test_open311.py plants contacts and reads every public view
        if path.startswith("/api/3/action/"):
            continue  # CKAN's actions, read only (a POST reads too, as in CKAN; writes are 403): read below
        if path.startswith("/opendata/") and "{" in path:
            continue  # read below with every published dataset's id and period
        for method, operation in item.items():
            if not operation.get("security"):
                assert method == "get", f"{method.upper()} {path} needs no key: a public route that changes things"
                assert "{" not in path, f"public route with a parameter: {path} (extend this test)"
                paths.append(path)
    return paths


@pytest.fixture
def planted(make_api, analytics, influx_db, mosquitto):
    api = make_api(api_public_rate_per_min=100_000, influx_password=SECRETS["influx_password"],
                   grafana_token=SECRETS["grafana_token"], smtp_host=SECRETS["smtp_host"],
                   api_notify_rules=[{"role": "operator", "min_severity": "info", "webhook": SECRETS["webhook"]}])
    registry = api.services.registry
    registry.add(DeviceNew(id=SECRETS["device"], kind="building", district="tanjungpinang-barat",
                           lat=float(SECRETS["lat"]), lon=104.4512345678, note=SECRETS["note"]),
                 credential_hash=SECRETS["credential"])
    registry.update(SECRETS["device"], firmware=SECRETS["firmware"], public_name=PUBLIC_NAME)
    registry.add(DeviceNew(id=SECRETS["device2"], kind="water", district="bukit-bestari", note=SECRETS["note"]))
    with registry.lock:  # a stored device config, as provisioning keeps it
        registry.db.execute("CREATE TABLE IF NOT EXISTS device_configs (device_id TEXT PRIMARY KEY, config TEXT, "
                            "updated_ms INTEGER)")
        registry.db.execute("INSERT OR REPLACE INTO device_configs VALUES (?, ?, ?)",
                            (SECRETS["device"], f'{{"thresholds": {{"co2_ppm": [1, {SECRETS["threshold"]}]}}}}', 1))
    key = api.services.keys.create(SECRETS["key_name"], "operator")
    # a hospital whose ward is fed by the planted sensor, and a hospital key that updated another ward
    hospitals = api.services.hospitals
    spot = api.settings.city.district("tanjungpinang-barat").geometry.representative_point()
    hospitals.add(HospitalNew(id="rsud-zx", name="RSUD Raja Ahmad Tabib", address="Jl. WR Supratman",
                              lat=spot.y, lon=spot.x, phone="+62 771 25678", type="government"), "tanjungpinang-barat")
    hospitals.add_ward("rsud-zx", WardNew(id="rsud-zx-melati", name=PUBLIC_NAME, bed_class="class_1", capacity=20))
    hospitals.add_ward("rsud-zx", WardNew(id="rsud-zx-icu", name="ICU", bed_class="icu", capacity=4))
    hospitals.map_sensor("rsud-zx", "rsud-zx-melati", SECRETS["device"])
    hospitals.set_beds("rsud-zx", "rsud-zx-icu", BedsUpdate(beds_free=1), SECRETS["key_name"])
    now = int(time.time() * 1000)
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write([f"building,device={SECRETS['device']},district=tanjungpinang-barat beds_free=7.0,co2_ppm=650.0 "
                  f"{now - 60_000}",
                  f"water,device={SECRETS['device2']},district=bukit-bestari flow_lps=12.0 {now - 60_000}"])
    writer.close()
    analytics.publish(alert("inc-zx", device=SECRETS["device2"], explanation=SECRETS["alert_text"]),
                      device=SECRETS["device2"])
    wait_for(lambda: api.services.alerts.store.find()[1] == 1)
    # a citizen's complaint with a contact, linked to the incident, approved so its text is public
    with httpx.Client(base_url=api.url, timeout=10) as c:
        filed = c.post("/open311/v2/requests.json", data={
            "service_code": "low_pressure", "district": "bukit-bestari", "description": COMPLAINT_TEXT,
            **CONTACT}).json()
    complaint = filed[0]["service_request_id"]
    with api.client("operator") as op:
        assert op.post(f"/complaints/{complaint}/moderate", json={"approve": True}).status_code == 200
        assert op.post("/alerts/inc-zx/ack", json={"note": SECRETS["ack_note"]}).status_code == 200
        assert op.post("/alerts/inc-zx/assign", json={"assignee": SECRETS["assignee"]}).status_code == 200
        assert op.post("/alerts/inc-zx/resolve", json={"note": SECRETS["resolve_note"]}).status_code == 200
    return api, key.key, complaint


def _open_data_paths(c: httpx.Client) -> list[str]:
    """Every published dataset's page and this month's and today's files, and the CKAN actions
    (tests/api/test_opendata_property.py reads them all with data in every policy mode)."""
    month = time.strftime("%Y-%m")
    paths = ["/api/3/action/package_list", "/api/3/action/package_search?rows=1000",
             "/api/3/action/current_package_list_with_resources", "/api/3/action/status_show"]
    for dataset in c.get("/opendata/datasets").json()["data"]:
        paths += [f"/opendata/datasets/{dataset['id']}", f"/api/3/action/package_show?id={dataset['id']}"]
        paths += [f"/opendata/download/{dataset['id']}/{month}.{fmt}" for fmt in downloads.FORMATS]
    return paths


def test_no_private_field_reaches_any_public_route(planted):
    api, key, complaint = planted
    secrets = list(SECRETS.values()) + list(CONTACT.values()) + [key, api.settings.mqtt_password, "4711", "PIN 0000"]
    with httpx.Client(base_url=api.url, timeout=10) as c:
        spec = c.get("/openapi.json").json()
        paths = _public_get_paths(spec)
        assert {"/health", "/ready", "/public/city", "/public/hospitals/beds", "/control-room"} <= set(paths)
        seen = ""
        open_data = [f"/open311/v2/{what}.{fmt}" for fmt in ("json", "xml")
                     for what in ("services", "requests", f"requests/{complaint}")]
        for path in [*paths, *open_data, "/openapi.json", "/docs", "/redoc"]:
            r = c.get(path)
            assert r.status_code in (200, 503), (path, r.status_code)
            text = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
            for secret in secrets:
                assert secret not in text, f"{path} shows the private value {secret!r}"
            seen += text
        for path in _open_data_paths(c):
            r = c.get(path)
            assert r.status_code in (200, 404), (path, r.status_code, r.text[:200])
            text = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
            for secret in secrets:
                assert secret not in text, f"{path} shows the private value {secret!r}"
        # the control: the public name is there, so the routes did read the planted data
        assert PUBLIC_NAME in seen and COMPLAINT_TEXT in seen
        beds = c.get("/public/hospitals/beds").json()["data"]
        assert [(w["name"], w["beds_free"]) for w in beds[0]["wards"]] == [("ICU", 1), (PUBLIC_NAME, 7)]


def test_only_an_admin_sets_a_public_name(make_api):
    api = make_api()
    api.services.registry.add(DeviceNew(id="bld-0010", kind="building", district="bukit-bestari"))
    body = {"public_name": "  Ruang Anggrek  "}
    for role in ("technician", "engineer", "operator"):
        with api.client(role) as c:
            assert c.put("/devices/bld-0010/public-name", json=body).status_code == 403
    with api.client("admin") as c:
        r = c.put("/devices/bld-0010/public-name", json=body)
        assert r.status_code == 200 and r.json()["public_name"] == "Ruang Anggrek"
        assert c.put("/devices/bld-0010/public-name", json={"public_name": "a\nb"}).status_code == 422
        assert c.put("/devices/bld-0404/public-name", json=body).status_code == 404
    assert api.services.registry.get("bld-0010").public_name == "Ruang Anggrek"
