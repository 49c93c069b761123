"""The open summaries behind the public open-data page, on the live API with real influxd: the figures a
journalist would check by hand, cells below k devices left out (also from the city totals), nothing
personal or closed in any answer, hostile parameters refused with a clear 4xx and quickly."""

import time

import httpx
import pytest

from tests.api.opendata.conftest import FULL, PERSONAL, SPARSE

ROUTES = ["/public/summary/water", "/public/summary/power", "/public/summary/traffic",
          "/public/summary/complaints", "/public/summary/beds"]


def test_water_supplied_per_day_counts_only_published_districts(open_city):
    api, expected = open_city
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/summary/water", params={"days": 3}).json()
    assert [d["day"] for d in body["data"]] == sorted(d["day"] for d in body["data"]) and len(body["data"]) == 3
    # three meters at 10 L/s in one district for two hours; the single 500 L/s meter elsewhere is below k:
    # not in the total, and no day names its district
    assert sum(d["supplied_m3"] or 0 for d in body["data"]) == pytest.approx(expected["supplied_m3"], rel=0.02)
    assert {d["districts"] for d in body["data"] if d["supplied_m3"] is not None} == {1}
    assert body["data"][0]["supplied_m3"] is None  # no data that day: unknown, not 0


def test_the_figures_are_the_downloadable_rows(open_city):
    """The page's water figure is the sum of the water-flow_lps dataset's published rows."""
    from api.opendata import datasets

    api, expected = open_city
    dataset = datasets.get(api.settings.city, "water-flow_lps")
    end = expected["last_hour"] + 3_600_000
    rows = list(datasets.rows(api.services, dataset, end - 3 * 3_600_000, end))
    assert {r["district"] for r in rows} == {FULL}
    assert sum(r["sum"] for r in rows) * 3600 / 1000 == pytest.approx(expected["supplied_m3"], rel=0.02)


def test_minutes_without_power_per_district(open_city):
    api, expected = open_city
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/summary/power", params={"days": 2}).json()
    assert sum(r["minutes_without_power"] for r in body["data"] if r["district"] == FULL) == \
        expected["outage_minutes"]
    assert all(r["district"] != SPARSE for r in body["data"])  # one meter always at 0 V: below k, not published
    assert body["threshold_v"] == pytest.approx(0.8 * api.settings.city.grid.nominal_voltage_v)


def test_traffic_speed_by_hour(open_city):
    api, expected = open_city
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/summary/traffic", params={"days": 2}).json()
    rows = {r["start_ms"]: r for r in body["data"] if r["district"] == FULL}
    assert rows[expected["last_hour"]]["speed_kmh"] == pytest.approx(30.0)
    assert all(r["district"] != SPARSE for r in body["data"])


def test_complaints_received_and_answered(open_city):
    api, _ = open_city
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/summary/complaints", params={"days": 2}).json()
    assert (body["received"], body["answered"], body["k"]) == (3, 1, 3)
    assert body["median_hours_to_answer"] == pytest.approx(3.0, abs=0.1)
    assert sum(d["received"] or 0 for d in body["data"]) == 3


def test_a_day_with_fewer_than_k_complaints_is_not_published(api):
    from api.citizens.complaints import NewComplaint

    for n in range(2):
        api.services.complaints.create(NewComplaint(service_code="leak", district=FULL, description=f"x {n}"),
                                       client=f"10.1.0.{n}")
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/summary/complaints", params={"days": 1}).json()
    assert (body["received"], body["data"][0]["received"], body["data"][0]["answered"]) == (0, None, None)


def test_beds_per_class(open_city):
    api, _ = open_city
    with httpx.Client(base_url=api.url) as c:
        body = c.get("/public/summary/beds").json()
    rows = {r["bed_class"]: r for r in body["data"]}
    assert (rows["icu"]["capacity"], rows["icu"]["beds_free"]) == (8, 3)
    assert (rows["class_3"]["capacity"], rows["class_3"]["beds_free"]) == (30, 12)


def test_nothing_personal_or_identifying_reaches_the_summaries(open_city):
    api, _ = open_city
    with httpx.Client(base_url=api.url) as c:
        text = "".join(c.get(route).text for route in ROUTES)
    planted = [*PERSONAL.values(), "PLANTED-2", "PLANTED-STAFF-NAME", "Pipa sudah", "10.0.0.1"]
    planted += [f"{kind}-{n}" for kind in ("wtr", "pwr", "trf") for n in (100, 101, 102, 200)]
    for secret in planted:
        assert secret not in text, secret


@pytest.mark.parametrize("route, params", [
    ("/public/summary/water", {"days": 0}), ("/public/summary/water", {"days": 10_000_000}),
    ("/public/summary/water", {"days": "1e9"}), ("/public/summary/power", {"days": -1}),
    ("/public/summary/traffic", {"days": 8}), ("/public/summary/complaints", {"days": "a year"}),
    ("/public/summary/complaints", {"days": "9" * 400}),
])
def test_hostile_ranges_are_refused_quickly(api, route, params):
    with httpx.Client(base_url=api.url) as c:
        started = time.monotonic()
        r = c.get(route, params=params)
    assert r.status_code == 422 and r.json()["error"] == "invalid_input" and "days" in r.json()["message"]
    assert time.monotonic() - started < 2.0  # a 4xx before any query (generous: a shared, busy machine)


def test_summaries_without_any_data(api):
    with httpx.Client(base_url=api.url) as c:
        water = c.get("/public/summary/water").json()
        assert len(water["data"]) == 14 and {d["supplied_m3"] for d in water["data"]} == {None}
        assert c.get("/public/summary/power").json()["data"] == []
        assert c.get("/public/summary/beds").json()["data"] == []
        assert c.get("/public/summary/complaints").json()["received"] == 0


def test_a_closed_metric_gives_nothing_to_the_summaries_or_the_page(make_api, influx_db, tmp_path):
    """The profile closes water flow, voltage and speed: the readings are there, the summaries say nothing
    of them, and the page shows no figure."""
    from tests.api.opendata.conftest import _lines
    from tests.api.opendata_seed import roll_up, write_readings
    from tests.api.test_opendata_policy import _profile_with

    closed = ("\nopen_data:\n  k: 3\n  metrics:\n    water.flow_lps: {mode: closed}\n"
              "    power.voltage_v: {mode: closed}\n    traffic.speed_kmh: {mode: closed}\n")
    api = make_api(profile=_profile_with(tmp_path, closed))
    end = int(time.time() * 1000) // 3_600_000 * 3_600_000
    lines, _ = _lines(end - 2 * 3_600_000, end)
    write_readings(influx_db, lines)
    roll_up(influx_db, end - 2 * 3_600_000, end)
    with httpx.Client(base_url=api.url) as c:
        assert {d["supplied_m3"] for d in c.get("/public/summary/water").json()["data"]} == {None}
        assert c.get("/public/summary/power", params={"days": 2}).json()["data"] == []
        assert c.get("/public/summary/traffic", params={"days": 2}).json()["data"] == []
        ids = {d["id"] for d in c.get("/opendata/datasets").json()["data"]}
        assert not ids & {"water-flow_lps", "power-voltage_v", "traffic-speed_kmh"}
        assert c.get("/opendata/download/traffic-speed_kmh/2026-12.ngsild").status_code == 404


@pytest.mark.parametrize("k", [2, 3, 5])
def test_only_districts_with_k_devices_reach_any_summary(make_api, influx_db, tmp_path, k):
    """Four districts with 1, 2, 3 and 5 devices of each metric; whatever k the profile sets, a district
    appears in the water total, the power and the traffic figures exactly when it has at least k."""
    from tests.api.opendata_seed import roll_up, write_readings
    from tests.api.test_opendata_policy import _profile_with

    api = make_api(profile=_profile_with(tmp_path, f"\nopen_data:\n  k: {k}\n"))
    slugs = list(api.settings.city.slugs)
    devices = dict(zip(slugs, (1, 2, 3, 5), strict=True))
    end = int(time.time() * 1000) // 3_600_000 * 3_600_000
    lines = []
    for t in range(end - 3_600_000, end, 60_000):
        for district, n in devices.items():
            for d in range(n):
                lines += [f"water,device=w-{district}-{d},district={district} flow_lps=1.0 {t}",
                          f"power,device=p-{district}-{d},district={district} voltage_v=0.0 {t}",
                          f"traffic,device=t-{district}-{d},district={district} speed_kmh=25.0 {t}"]
    write_readings(influx_db, lines)
    roll_up(influx_db, end - 3_600_000, end)
    allowed = {district for district, n in devices.items() if n >= k}
    with httpx.Client(base_url=api.url) as c:
        water = c.get("/public/summary/water", params={"days": 2}).json()["data"]
        power = c.get("/public/summary/power", params={"days": 2}).json()["data"]
        traffic = c.get("/public/summary/traffic", params={"days": 2}).json()["data"]
    assert {r["district"] for r in power} == allowed
    assert {r["district"] for r in traffic} == allowed
    # every published meter gave 1 L/s for an hour: 3.6 m³ each, nothing from a district below k
    assert sum(d["supplied_m3"] or 0 for d in water) == pytest.approx(3.6 * sum(devices[d] for d in allowed), rel=0.05)
    assert sum(r["minutes_without_power"] for r in power) == 60 * len(allowed)
