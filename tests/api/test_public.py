"""Public figures without a login: computed from the readings, rate limited,
and never showing a device id, raw series or configuration."""

import time

import httpx
import pytest

from api.routes.public import day_start_ms
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew

MINUTE = 60_000
DEVICES = [("wtr-0001", "water", "bukit-bestari", ""), ("wtr-0002", "water", "tanjungpinang-kota", ""),
           ("pwr-0001", "power", "bukit-bestari", ""), ("pwr-0002", "power", "tanjungpinang-timur", ""),
           ("trf-0001", "traffic", "tanjungpinang-kota", ""), ("trf-0002", "traffic", "tanjungpinang-barat", ""),
           ("bld-0001", "building", "tanjungpinang-barat", "RSUD Raja Ahmad Tabib - Ward Melati"),
           ("bld-0002", "building", "bukit-bestari", "RSAL Dr. Midiyato - ICU")]
# free beds per hospital and ward: tests/api/test_hospitals.py


@pytest.fixture
def city(api, influx_db):
    for device, kind, district, public_name in DEVICES:
        api.services.registry.add(DeviceNew(id=device, kind=kind, district=district, note="gate code 4711"))
        api.services.registry.update(device, public_name=public_name)
    now = int(time.time() * 1000)
    first = max(day_start_ms(api.services, now), now - 30 * MINUTE)
    times = list(range(first, now, MINUTE))
    lines = []
    for t in times:
        lines += [f"water,device=wtr-0001,district=bukit-bestari flow_lps=10.0 {t}",
                  f"water,device=wtr-0002,district=tanjungpinang-kota flow_lps=-5.0 {t}"]  # backflow: not supply
    t = now - MINUTE
    lines += ["power,device=pwr-0001,district=bukit-bestari voltage_v=229.5 " + str(t),
              "power,device=pwr-0002,district=tanjungpinang-timur voltage_v=3.0 " + str(t),
              "traffic,device=trf-0001,district=tanjungpinang-kota speed_kmh=12.0 " + str(t),
              "traffic,device=trf-0002,district=tanjungpinang-barat speed_kmh=55.0 " + str(t),
              "building,device=bld-0001,district=tanjungpinang-barat beds_free=4.0,co2_ppm=800.0 " + str(t),
              "building,device=bld-0002,district=bukit-bestari beds_free=0.0 " + str(t)]
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write(lines)
    writer.close()
    expected_m3 = 10 * (times[-1] - times[0]) / 1000 / 1000
    return api, expected_m3


def test_city_figures(city):
    api, expected_m3 = city
    with api.client() as c:
        r = c.get("/public/city")
    assert r.status_code == 200
    body = r.json()
    assert body["water_supplied_today_m3"] == pytest.approx(expected_m3, abs=0.1)
    districts = {d["district"]: d for d in body["districts"]}
    assert districts["bukit-bestari"]["power"] == "on"
    assert districts["tanjungpinang-timur"]["power"] == "outage"
    assert districts["tanjungpinang-kota"]["power"] == "unknown"
    assert (districts["tanjungpinang-kota"]["traffic"], districts["tanjungpinang-kota"]["mean_speed_kmh"]) == \
        ("congested", 12.0)
    assert districts["tanjungpinang-barat"]["traffic"] == "free"
    assert body["city"] == "Tanjungpinang"


def test_public_answers_never_show_devices_or_secrets(city):
    api, _ = city
    with api.client() as c:
        text = c.get("/public/city").text + c.get("/public/hospitals/beds").text
    for device, *_ in DEVICES:
        assert device not in text
    for secret in ("svc-", "password", api.settings.mqtt_password, "co2_ppm", "127.0.0.1"):
        assert secret not in text


def test_public_routes_are_rate_limited_per_client(make_api):
    api = make_api(api_public_rate_per_min=5)
    with api.client() as c:
        statuses = [c.get("/public/hospitals/beds").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = c.get("/public/city")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"
    with api.client("operator") as c:  # the rest of the API is not limited
        assert all(c.get("/alerts").status_code == 200 for _ in range(10))


def test_public_figures_without_any_data(api):
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/city").json()
        assert body["water_supplied_today_m3"] is None
        assert {d["power"] for d in body["districts"]} == {"unknown"}
        assert len(body["districts"]) == 4
        beds = c.get("/public/hospitals/beds").json()
        assert (beds["data"], beds["count"]) == ([], 0)


def test_a_crowd_costs_one_computation(make_api, monkeypatch):
    import threading

    from api.routes import public

    api = make_api(api_public_rate_per_min=100_000)
    computed = []
    real = public.city_figures

    def slow_figures(services):
        computed.append(1)
        time.sleep(0.3)  # a slow InfluxDB
        return real(services)

    monkeypatch.setattr(public, "city_figures", slow_figures)
    statuses = []

    def visitor():
        with httpx.Client(base_url=api.url, timeout=10) as c:
            statuses.append(c.get("/public/city").status_code)

    crowd = [threading.Thread(target=visitor) for _ in range(20)]
    for t in crowd:
        t.start()
    for t in crowd:
        t.join()
    assert statuses == [200] * 20 and len(computed) == 1
    # expired: the next ones refresh once, the rest get the old value
    monkeypatch.setattr(api.services.public, "ttl_s", 0.0)
    crowd = [threading.Thread(target=visitor) for _ in range(10)]
    for t in crowd:
        t.start()
    for t in crowd:
        t.join()
    assert statuses == [200] * 30 and len(computed) <= 3
