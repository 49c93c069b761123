"""Hospitals on the live API (real Mosquitto and influxd): records, wards by class, free beds from the
hospital's own key (only its own wards) or a mapped sensor, the duty roster, freshness, and the public
"where is a free bed now" list with nothing private in it."""

import time

import httpx
import pytest

from api.citizens.hospitals import BedsUpdate
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew

HOUR_MS = 3600_000
# positions inside the profile's districts (cities/tanjungpinang.yaml)
RSUD = {"id": "rsud-tabib", "name": "RSUD Raja Ahmad Tabib", "address": "Jl. WR Supratman No. 1",
        "phone": "+62 771 7335203", "type": "government"}
RSAL = {"id": "rsal-midiyato", "name": "RSAL Dr. Midiyato Suratani", "address": "Jl. Ciptadi No. 1",
        "phone": "+62 771 21211", "type": "military"}


def spot(api, n: int) -> dict:
    point = api.settings.city.districts[n].geometry.representative_point()
    return {"lat": round(point.y, 6), "lon": round(point.x, 6)}


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def city_hospitals(make_api):
    api = make_api(api_public_rate_per_min=100_000)
    with api.client("admin") as admin:
        for n, (record, wards) in enumerate([
                (RSUD, [("rsud-icu", "ICU Melati", "icu", 8), ("rsud-k3", "Kelas III Anggrek", "class_3", 30)]),
                (RSAL, [("rsal-icu", "ICU Bahari", "icu", 4), ("rsal-vip", "VIP Samudra", "vip", 6)])]):
            r = admin.post("/hospitals", json=record | spot(api, n))
            assert r.status_code == 201, r.text
            assert r.json()["district"] == api.settings.city.districts[n].slug
            for ward_id, name, bed_class, capacity in wards:
                assert admin.post(f"/hospitals/{record['id']}/wards", json={
                    "id": ward_id, "name": name, "bed_class": bed_class, "capacity": capacity}).status_code == 201
        keys = {h: admin.post(f"/hospitals/{h}/keys", json={"name": f"{h} night desk"}).json()["key"]
                for h in ("rsud-tabib", "rsal-midiyato")}
    return api, keys


def as_key(api, key: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def public(api, **params) -> dict:
    api.services.public.forget("beds")
    with httpx.Client(base_url=api.url, timeout=10) as c:
        r = c.get("/public/hospitals/beds", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_hospital_key_updates_its_own_wards_only(city_hospitals):
    api, keys = city_hospitals
    with as_key(api, keys["rsud-tabib"]) as rsud:
        r = rsud.put("/hospitals/rsud-tabib/wards/rsud-icu/beds", json={"beds_free": 3})
        assert r.status_code == 200 and r.json()["beds_free"] == 3
        assert r.json()["updated_by"] == "rsud-tabib night desk"
        # another hospital's ward, by its own path or smuggled under this hospital's: refused, nothing changed
        assert rsud.put("/hospitals/rsal-midiyato/wards/rsal-icu/beds", json={"beds_free": 4}).status_code == 403
        assert rsud.put("/hospitals/rsud-tabib/wards/rsal-icu/beds", json={"beds_free": 4}).status_code == 404
        assert rsud.put("/hospitals/rsal-midiyato/roster", json={"shifts": []}).status_code == 403
        assert rsud.get("/hospitals/rsal-midiyato").status_code == 403
        assert rsud.get("/hospitals/rsud-tabib").status_code == 200
        # a hospital key sees nothing of the city's telemetry and makes nothing
        for path in ("/alerts", "/readings/latest", "/fleet/devices", "/hospitals"):
            assert rsud.get(path).status_code == 403, path
        assert rsud.post("/hospitals/rsud-tabib/wards", json={"id": "rsud-x", "name": "X", "bed_class": "icu",
                                                               "capacity": 1}).status_code == 403
        # more free beds than the ward has: refused; a new capacity with it: taken
        assert rsud.put("/hospitals/rsud-tabib/wards/rsud-icu/beds", json={"beds_free": 9}).status_code == 409
        assert rsud.put("/hospitals/rsud-tabib/wards/rsud-icu/beds",
                        json={"beds_free": 9, "capacity": 10}).json()["capacity"] == 10
        for bad in ({"beds_free": -1}, {"beds_free": "3"}, {"beds_free": True}, {"beds_free": 1, "x": 1}, {}):
            assert rsud.put("/hospitals/rsud-tabib/wards/rsud-icu/beds", json=bad).status_code == 422, bad
    assert api.services.hospitals.ward("rsal-midiyato", "rsal-icu").beds_free is None
    with api.client("operator") as op:  # staff read, only admin writes records
        assert op.get("/hospitals").status_code == 200
        assert op.post("/hospitals", json=RSUD | {"id": "x-y"} | spot(api, 0)).status_code == 403


def test_records_are_checked(city_hospitals):
    api, _ = city_hospitals
    with api.client("admin") as admin:
        outside = admin.post("/hospitals", json=RSUD | {"id": "rs-far", "lat": -6.2, "lon": 106.8})
        assert outside.status_code == 409 and "none of the city's districts" in outside.json()["message"]
        assert admin.post("/hospitals", json=RSUD | spot(api, 0)).status_code == 409
        for bad in ({"name": "<script>alert(1)</script>"}, {"phone": "call me"}, {"type": "clinic"},
                    {"name": "a\nb"}, {"id": "../etc"}):
            assert admin.post("/hospitals", json=RSUD | spot(api, 0) | {"id": "rs-new"} | bad).status_code == 422, bad
        assert admin.post("/hospitals/rsud-tabib/wards", json={"id": "w-1", "name": "W", "bed_class": "ward",
                                                               "capacity": 3}).status_code == 422
        assert admin.post("/hospitals/nope/keys", json={"name": "x"}).status_code == 404


def test_free_icu_bed_nearest_first_with_doctors_on_duty(city_hospitals):
    api, keys = city_hospitals
    now = now_ms()
    with as_key(api, keys["rsud-tabib"]) as rsud:
        rsud.put("/hospitals/rsud-tabib/wards/rsud-icu/beds", json={"beds_free": 2})
        rsud.put("/hospitals/rsud-tabib/wards/rsud-k3/beds", json={"beds_free": 11})
        r = rsud.put("/hospitals/rsud-tabib/roster", json={"shifts": [
            {"doctor": "dr. Sari Wulandari, Sp.An", "speciality": "anestesi", "start_ms": now - HOUR_MS,
             "end_ms": now + 7 * HOUR_MS},
            {"doctor": "dr. Budi, Sp.PD", "speciality": "penyakit dalam", "start_ms": now - 9 * HOUR_MS,
             "end_ms": now - HOUR_MS}]})
        assert r.json() == {"shifts": 2}
        assert rsud.put("/hospitals/rsud-tabib/roster", json={"shifts": [
            {"doctor": "dr. X", "speciality": "umum", "start_ms": now, "end_ms": now - 1}]}).status_code == 409
    with as_key(api, keys["rsal-midiyato"]) as rsal:
        rsal.put("/hospitals/rsal-midiyato/wards/rsal-icu/beds", json={"beds_free": 1})
    icu = public(api, bed_class="icu")
    assert [(h["id"], h["beds_free"], [w["name"] for w in h["wards"]]) for h in icu["data"]] == [
        ("rsud-tabib", 2, ["ICU Melati"]), ("rsal-midiyato", 1, ["ICU Bahari"])]
    rsud = icu["data"][0]
    assert rsud["phone"] == RSUD["phone"] and rsud["district"] == api.settings.city.districts[0].slug
    assert [d["doctor"] for d in rsud["doctors_on_duty"]] == ["dr. Sari Wulandari, Sp.An"]  # the ended shift: gone
    # nearest first from a point beside the second hospital
    near = public(api, bed_class="icu", **spot(api, 1))
    assert [h["id"] for h in near["data"]] == ["rsal-midiyato", "rsud-tabib"]
    assert near["data"][0]["distance_km"] < near["data"][1]["distance_km"]
    assert public(api, bed_class="vip", only_free="true")["count"] == 0  # never updated: not free


def test_a_ward_not_updated_for_an_hour_is_stale_never_free(city_hospitals):
    api, _ = city_hospitals
    hospitals = api.services.hospitals
    hospitals.set_beds("rsud-tabib", "rsud-icu", BedsUpdate(beds_free=5), "x", t_ms=now_ms() - HOUR_MS - 60_000)
    hospitals.set_beds("rsal-midiyato", "rsal-icu", BedsUpdate(beds_free=1), "x", t_ms=now_ms() - HOUR_MS + 60_000)
    wards = {w["name"]: w for h in public(api, bed_class="icu")["data"] for w in h["wards"]}
    assert wards["ICU Melati"]["stale"] is True and wards["ICU Melati"]["beds_free"] is None
    assert wards["ICU Melati"]["updated_ms"] is not None  # when it was last told is shown
    assert wards["ICU Bahari"]["stale"] is False and wards["ICU Bahari"]["beds_free"] == 1
    assert [h["id"] for h in public(api, bed_class="icu", only_free="true")["data"]] == ["rsal-midiyato"]


def test_a_beds_free_sensor_mapped_to_a_ward_feeds_it(city_hospitals, influx_db):
    api, keys = city_hospitals
    api.services.registry.add(DeviceNew(id="bld-0101", kind="building", district="bukit-bestari",
                                        note="ward sensor behind the nurses' desk, PIN 4711"))
    api.services.registry.add(DeviceNew(id="wtr-0101", kind="water", district="bukit-bestari"))
    with api.client("admin") as admin:
        assert admin.put("/hospitals/rsal-midiyato/wards/rsal-vip/sensor", json={"device": "wtr-0101"}).status_code \
            == 409
        assert admin.put("/hospitals/rsal-midiyato/wards/rsal-vip/sensor", json={"device": "bld-0404"}).status_code \
            == 404
        assert admin.put("/hospitals/rsal-midiyato/wards/rsal-vip/sensor", json={"device": "bld-0101"}).status_code \
            == 200
        assert admin.put("/hospitals/rsud-tabib/wards/rsud-icu/sensor", json={"device": "bld-0101"}).status_code \
            == 409  # one sensor, one ward
    with as_key(api, keys["rsal-midiyato"]) as rsal:
        assert rsal.put("/hospitals/rsal-midiyato/wards/rsal-vip/sensor", json={"device": None}).status_code == 403
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write([f"building,device=bld-0101,district=bukit-bestari beds_free=4.0 {now_ms() - 30_000}"])
    writer.close()
    body = public(api, bed_class="vip")
    ward = body["data"][0]["wards"][0]
    assert (ward["name"], ward["beds_free"], ward["stale"]) == ("VIP Samudra", 4, False)
    text = str(body)
    assert "bld-0101" not in text and "4711" not in text and "sensor" not in text
    # a newer update by the staff wins over an older reading
    with as_key(api, keys["rsal-midiyato"]) as rsal:
        rsal.put("/hospitals/rsal-midiyato/wards/rsal-vip/beds", json={"beds_free": 2})
    assert public(api, bed_class="vip")["data"][0]["wards"][0]["beds_free"] == 2


def test_the_public_list_shows_no_staff_fields(city_hospitals):
    api, keys = city_hospitals
    with as_key(api, keys["rsud-tabib"]) as rsud:
        rsud.put("/hospitals/rsud-tabib/wards/rsud-icu/beds", json={"beds_free": 2})
    text = str(public(api))
    for private in ("night desk", "updated_by", keys["rsud-tabib"], "sensor_device", "created_ms"):
        assert private not in text
    assert "ICU Melati" in text  # the control: the data is there
