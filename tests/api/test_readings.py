"""Readings through the API from a real influxd: latest per device, history
downsampled with GROUP BY time, aggregates per district; hostile input is
refused with a clear message, never pasted into InfluxQL."""

import time

import pytest

from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.api.harness import wait_for

MINUTE = 60_000


@pytest.fixture
def city(api, influx_db):
    """Two water meters in two districts, a power meter; one reading a minute for an hour."""
    now = int(time.time() * 1000) // MINUTE * MINUTE
    start = now - 60 * MINUTE
    for device, kind, district in [("wtr-0001", "water", "bukit-bestari"), ("wtr-0002", "water", "tanjungpinang-kota"),
                                   ("pwr-0001", "power", "bukit-bestari")]:
        api.services.registry.add(DeviceNew(id=device, kind=kind, district=district))
    lines = []
    for i in range(60):
        t = start + i * MINUTE
        lines.append(f"water,device=wtr-0001,district=bukit-bestari flow_lps={i}.0,pressure_bar=3.0,seq={i}i {t}")
        lines.append(f"water,device=wtr-0002,district=tanjungpinang-kota flow_lps={2 * i}.0,seq={i}i {t}")
        lines.append(f"power,device=pwr-0001,district=bukit-bestari voltage_v=230.0,seq={i}i {t}")
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write(lines)
    writer.close()
    return api, start, now


def test_latest_per_device(city):
    api, start, _ = city
    with api.client("technician") as c:
        page = c.get("/readings/latest").json()
        assert page["count"] == 3
        by_device = {r["device"]: r for r in page["data"]}
        assert by_device["wtr-0001"]["values"] == {"flow_lps": 59.0, "pressure_bar": 3.0}
        assert by_device["wtr-0001"]["t_ms"] == start + 59 * MINUTE and by_device["wtr-0001"]["seq"] == 59
        assert by_device["pwr-0001"] == {"device": "pwr-0001", "kind": "power", "district": "bukit-bestari",
                                         "t_ms": start + 59 * MINUTE, "values": {"voltage_v": 230.0}, "seq": 59}
        water = c.get("/readings/latest", params={"kind": "water", "district": "tanjungpinang-kota"}).json()
        assert [r["device"] for r in water["data"]] == ["wtr-0002"]
        paged = c.get("/readings/latest", params={"limit": 1, "offset": 1}).json()
        assert paged["count"] == 3 and [r["device"] for r in paged["data"]] == ["wtr-0001"]
        assert c.get("/readings/latest", params={"max_age": "1s"}).json()["count"] == 0


def test_history_is_downsampled_with_group_by_time(city):
    api, start, now = city
    with api.client("engineer") as c:
        r = c.get("/readings/wtr-0001/history",
                  params={"metric": "flow_lps", "start_ms": start, "end_ms": now, "every": "10m"}).json()
        assert r["every_ms"] == 600_000 and r["unit"] == "L/s" and r["fn"] == "mean"
        # each 10-minute bucket holds 10 consecutive minutes; buckets align to the epoch
        expected = {}
        for i in range(60):
            bucket = (start + i * MINUTE) // 600_000 * 600_000
            expected.setdefault(bucket, []).append(float(i))
        assert {p["t_ms"]: p["value"] for p in r["data"]} == {b: sum(v) / len(v) for b, v in expected.items()}
        assert r["count"] == len(r["data"])
        maximum = c.get("/readings/wtr-0001/history",
                        params={"metric": "flow_lps", "start_ms": start, "end_ms": now, "every": "1h", "fn": "max"})
        assert max(p["value"] for p in maximum.json()["data"]) == 59.0
        auto = c.get("/readings/wtr-0001/history", params={"metric": "flow_lps", "start_ms": start, "end_ms": now,
                                                           "points": 12}).json()
        assert auto["every_ms"] == 300_000 and 12 <= auto["count"] <= 13


def test_aggregates_per_district(city):
    api, start, now = city
    with api.client("operator") as c:
        r = c.get("/readings/aggregates", params={"kind": "water", "metric": "flow_lps", "start_ms": start,
                                                   "end_ms": now}).json()
    assert r["count"] == 2
    assert r["data"] == [
        {"district": "bukit-bestari", "kind": "water", "metric": "flow_lps", "mean": 29.5, "min": 0.0, "max": 59.0,
         "count": 60},
        {"district": "tanjungpinang-kota", "kind": "water", "metric": "flow_lps", "mean": 59.0, "min": 0.0,
         "max": 118.0, "count": 60}]


@pytest.mark.parametrize("params,message", [
    ({"metric": "flow_lps' OR 1=1 --"}, "metric"),
    ({"metric": "flow_lps", "every": "0s"}, "every"),
    ({"metric": "flow_lps", "every": "9999999w"}, "every"),  # would overflow InfluxDB's duration: not a 503
    ({"metric": "flow_lps", "every": "1000d"}, "every"),
    ({"metric": "flow_lps", "start_ms": -1}, "start_ms"),
    ({"metric": "flow_lps", "fn": "drop"}, "fn"),
    ({"metric": "x" * 100}, "metric"),
])
def test_history_refuses_bad_input_clearly(city, params, message):
    api, *_ = city
    with api.client("engineer") as c:
        r = c.get("/readings/wtr-0001/history", params=params)
    assert r.status_code == 422 and message in r.json()["message"], r.text


def test_history_of_a_metric_the_device_does_not_have_is_not_found(city):
    api, *_ = city
    with api.client("engineer") as c:
        r = c.get("/readings/wtr-0001/history", params={"metric": "voltage_v"})
    assert r.status_code == 404 and "water devices have no metric voltage_v" in r.json()["message"]


def test_history_widens_a_bucket_too_small_and_an_empty_range_has_no_points(city):
    api, start, now = city
    with api.client("engineer") as c:
        wide = c.get("/readings/wtr-0001/history", params={"metric": "flow_lps", "every": "1ms", "start_ms": 0,
                                                          "end_ms": 86_400_000})
        assert wide.status_code == 200 and wide.json()["every_ms"] == 8640  # 10,000 buckets at most
        empty = c.get("/readings/wtr-0001/history", params={"metric": "flow_lps", "start_ms": 10, "end_ms": 5})
        assert empty.status_code == 200 and empty.json()["data"] == []
        huge = c.get("/readings/wtr-0001/history", params={"metric": "flow_lps", "every": "999d"})
        assert huge.status_code == 200


def test_hostile_filters_do_not_reach_influxql(city):
    api, *_ = city
    with api.client("engineer") as c:
        for district in ["x' OR '1'='1", 'a"; DROP DATABASE city', "\\"]:
            r = c.get("/readings/latest", params={"district": district})
            assert r.status_code == 422 and "district" in r.json()["message"]
        assert c.get("/readings/nosuchdevice/history", params={"metric": "flow_lps"}).status_code == 404
        assert c.get("/readings/aggregates", params={"kind": "sewage", "metric": "x"}).status_code == 422
        assert c.get("/readings/aggregates", params={"kind": "power", "metric": "flow_lps"}).status_code == 404
        # the data is still there
        assert c.get("/readings/latest").json()["count"] == 3


def test_influxdb_down_is_a_clear_503(make_api, make_influxd):
    from telemetry_shared.influx import InfluxQL

    own = make_influxd()
    InfluxQL(own.url, "city").create_database()
    api = make_api(influx_url=own.url, influx_db="city")
    own.stop()
    with api.client("engineer") as c:
        r = c.get("/readings/latest")
    assert r.status_code == 503 and r.json()["error"] == "unavailable" and "InfluxDB" in r.json()["message"]


def test_latest_is_one_shared_snapshot_at_most_a_second_old(city, influx_db):
    api, start, now = city
    cache = api.services.latest
    with api.client("operator") as c:
        before = cache.queries
        for _ in range(5):
            assert c.get("/readings/latest").json()["count"] == 3
        assert cache.queries == before + 1
        writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
        writer.write([f"water,device=wtr-0001,district=bukit-bestari flow_lps=99.0,seq=60i {now + 1000}"])
        writer.close()
        fresh = wait_for(lambda: c.get("/readings/latest", params={"device": "wtr-0001"}).json()["data"][0]
                         ["values"]["flow_lps"] == 99.0, timeout_s=3)
        assert fresh


def test_influxdb_down_answers_fast_for_a_second_then_is_asked_again(make_api, make_influxd):
    from telemetry_shared.influx import InfluxQL

    own = make_influxd()
    InfluxQL(own.url, "city").create_database()
    api = make_api(influx_url=own.url, influx_db="city")
    cache = api.services.latest
    own.stop()
    with api.client("engineer") as c:
        before = cache.queries
        statuses = [c.get("/readings/latest").status_code for _ in range(5)]
        assert statuses == [503] * 5 and cache.queries == before + 1  # one attempt, remembered for the TTL
        time.sleep(1.1)
        own.start()
        assert wait_for(lambda: c.get("/readings/latest").status_code == 200, timeout_s=10)
