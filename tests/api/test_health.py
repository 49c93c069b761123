"""Liveness and readiness report the broker, InfluxDB and the registry."""

from tests.api.harness import wait_for


def test_ready_when_everything_answers(api):
    with api.client() as c:
        assert c.get("/health").json() == {"status": "ok"}
        body = wait_for(lambda: (r := c.get("/ready")).status_code == 200 and r.json())
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {"broker": True, "influxdb": True,
                                                                            "registry": True}


def test_not_ready_names_what_is_down(make_api, make_mosquitto, make_influxd):
    from telemetry_shared.influx import InfluxQL

    broker = make_mosquitto()
    influx = make_influxd()
    InfluxQL(influx.url, "city").create_database()
    api = make_api(mqtt_port=broker.port, influx_url=influx.url, influx_db="city")
    with api.client() as c:
        wait_for(lambda: c.get("/ready").status_code == 200)
        influx.stop()
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        assert [n for n, check in r.json()["checks"].items() if not check["ok"]] == ["influxdb"]
        assert r.json()["checks"]["influxdb"]["message"] == "InfluxDB does not answer /ping"
        broker.stop()
        down = wait_for(lambda: (r := c.get("/ready")).json()["checks"]["broker"]["ok"] is False and r.json())
        assert not down["checks"]["influxdb"]["ok"] and down["checks"]["registry"]["ok"]
        assert down["checks"]["broker"]["message"] == "the alert subscriber is not connected to the broker"
        assert c.get("/health").status_code == 200  # alive, just not ready
        text = c.get("/ready").text
        assert str(influx.port) not in text and "password" not in text
