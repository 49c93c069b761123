"""The alert lifecycle through the API, fed over real MQTT."""

import sqlite3

import pytest

from tests.api.harness import KEY_NAMES, alert, wait_for


def listed(client, **params):
    return client.get("/alerts", params=params).json()


def test_published_alert_is_stored_and_listed(api, analytics):
    analytics.publish(alert("inc-1", severity="warning"))
    with api.client("technician") as c:
        page = wait_for(lambda: (p := listed(c))["count"] == 1 and p)
        item = page["data"][0]
        assert (item["id"], item["severity"], item["state"], item["acknowledged"]) == ("inc-1", "warning", "active",
                                                                                      False)
        assert item["explanation"].startswith("pressure 1.2 bar")


def test_severity_rises_and_falls_and_replays_change_nothing(api, analytics):
    base = alert("inc-2", severity="warning", updated_ms=1_000_000)
    analytics.publish(base)
    analytics.publish(base | {"severity": "critical", "updated_ms": 1_000_100})
    analytics.publish(base | {"severity": "info", "updated_ms": 1_000_200})
    analytics.publish(base | {"severity": "critical", "updated_ms": 1_000_050})  # late replay: ignored
    analytics.publish(base | {"state": "cleared", "severity": "info", "updated_ms": 1_000_300})
    with api.client("operator") as c:
        detail = wait_for(lambda: len((d := c.get("/alerts/inc-2").json())["audit"]) >= 4 and d)
    assert [e["action"] for e in detail["audit"]] == ["opened", "severity_raised", "severity_lowered", "cleared"]
    a = detail["alert"]
    assert (a["state"], a["severity"], a["peak_severity"]) == ("cleared", "info", "critical")
    assert api.services.alerts.subscriber.counters["replays"] == 1


def test_acknowledge_assign_resolve_keep_who_and_note(api, analytics):
    analytics.publish(alert("inc-3", severity="critical"))
    with api.client("operator") as op, api.client("engineer") as eng:
        wait_for(lambda: listed(op)["count"] == 1)
        r = op.post("/alerts/inc-3/ack", json={"note": "crew called"})
        assert r.status_code == 200 and r.json()["acknowledged_by"] == KEY_NAMES["operator"]
        again = op.post("/alerts/inc-3/ack", json={})
        assert again.status_code == 409 and "already acknowledged" in again.json()["message"]
        assert eng.post("/alerts/inc-3/assign", json={"assignee": "Budi (water crew 2)"}).json()["assignee"] == \
            "Budi (water crew 2)"
        no_note = eng.post("/alerts/inc-3/resolve", json={"note": ""})
        assert no_note.status_code == 422 and no_note.json()["error"] == "invalid_input"
        done = eng.post("/alerts/inc-3/resolve", json={"note": "valve reopened at pump 4"}).json()
        assert (done["resolved"], done["resolved_by"], done["state"]) == (True, KEY_NAMES["engineer"], "cleared")
        assert op.post("/alerts/inc-3/resolve", json={"note": "x"}).status_code == 409
        audit = op.get("/alerts/inc-3").json()["audit"]
        assert [(e["actor"], e["action"], e["note"]) for e in audit[1:]] == [
            (KEY_NAMES["operator"], "acknowledged", "crew called"),
            (KEY_NAMES["engineer"], "assigned", ""),
            (KEY_NAMES["engineer"], "resolved", "valve reopened at pump 4")]
        assert listed(op, resolved="false")["count"] == 0
        assert listed(op, resolved="true", ack="acknowledged")["count"] == 1


def test_a_resolved_incident_that_fires_again_reopens_unacknowledged(api, analytics):
    analytics.publish(alert("inc-4", updated_ms=2_000_000))
    with api.client("operator") as op:
        wait_for(lambda: listed(op)["count"] == 1)
        op.post("/alerts/inc-4/resolve", json={"note": "looked fine on site"})
        analytics.publish(alert("inc-4", severity="critical", updated_ms=2_000_500))
        a = wait_for(lambda: (a := op.get("/alerts/inc-4").json()["alert"])["resolved"] is False and a)
        assert (a["state"], a["acknowledged"], a["severity"]) == ("active", False, "critical")
        actions = [e["action"] for e in op.get("/alerts/inc-4").json()["audit"]]
        assert actions == ["opened", "resolved", "reopened", "severity_raised"]


def test_the_audit_trail_cannot_be_rewritten(api, analytics):
    analytics.publish(alert("inc-5"))
    with api.client("operator") as op:
        wait_for(lambda: listed(op)["count"] == 1)
    conn = sqlite3.connect(api.settings.api_db_file)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE alert_audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM alert_audit")
    conn.close()


def test_filters_and_pages(api, analytics):
    for n, (severity, district) in enumerate([("critical", "bukit-bestari"), ("warning", "tanjungpinang-kota"),
                                              ("warning", "bukit-bestari"), ("info", "tanjungpinang-timur")]):
        analytics.publish(alert(f"inc-f{n}", device=f"wtr-000{n}", severity=severity, district=district),
                          device=f"wtr-000{n}")
    with api.client("engineer") as c:
        wait_for(lambda: listed(c)["count"] == 4)
        assert [a["severity"] for a in listed(c)["data"]] == ["critical", "warning", "warning", "info"]
        assert listed(c, severity="warning")["count"] == 2
        assert listed(c, district="bukit-bestari", severity="warning")["data"][0]["id"] == "inc-f2"
        page = listed(c, limit=2, offset=2)
        assert page["count"] == 4 and len(page["data"]) == 2
        assert listed(c, device="wtr-0003")["count"] == 1
        bad = c.get("/alerts", params={"severity": "apocalyptic", "limit": 0})
        assert bad.status_code == 422 and "severity" in bad.json()["message"]
        assert c.get("/alerts/no-such-alert").status_code == 404


def test_malformed_alerts_over_mqtt_are_counted_and_harmless(api, analytics):
    analytics.publish(b"{not json")
    analytics.publish(b'{"v": 1, "id": "x", "device": "wtr-0001", "state": "exploded"}')
    analytics.publish(b"x" * 20000)
    analytics.publish(alert("inc-ok"))
    with api.client("operator") as c:
        wait_for(lambda: listed(c)["count"] == 1)
    counters = api.services.alerts.subscriber.counters
    assert counters["rejected_malformed_json"] == 1
    assert counters["rejected_bad_state"] == 1
    assert counters["rejected_oversized"] == 1


def test_detail_shows_the_readings_around_the_alert(api, analytics, influx_db):
    from telemetry_shared.influx import V1Writer

    started = alert("inc-r")["started_ms"]
    lines = [f"water,device=wtr-0001,district=bukit-bestari pressure_bar={3.4 - i * 0.2},seq={i}i "
             f"{started - 600_000 + i * 60_000}" for i in range(12)]
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write(lines)
    writer.close()
    analytics.publish(alert("inc-r"))
    with api.client("technician") as c:
        wait_for(lambda: listed(c)["count"] == 1)
        detail = c.get("/alerts/inc-r").json()
    assert detail["readings_error"] == ""
    values = [p["value"] for p in detail["readings"]]
    assert len(values) == 12 and values[0] == pytest.approx(3.4) and values[-1] == pytest.approx(3.4 - 11 * 0.2)


def test_oversized_and_malformed_bodies_are_refused_clearly(api, analytics):
    analytics.publish(alert("inc-big"))
    with api.client("operator") as c:
        wait_for(lambda: listed(c)["count"] == 1)
        big = c.post("/alerts/inc-big/ack", json={"note": "x" * 2_000_000})
        assert big.status_code == 413 and big.json()["error"] == "too_large"

        def chunks():
            yield b'{"note": "'
            for _ in range(1100):
                yield b"y" * 1000
            yield b'"}'

        streamed = c.post("/alerts/inc-big/ack", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        long_note = c.post("/alerts/inc-big/ack", json={"note": "x" * 2001})
        assert long_note.status_code == 422 and "note" in long_note.json()["message"]
        for body in (b"{", b"[]", b'{"note": 5}', b"\xff\xfe", b'{"note": "\\ud800"}'):
            r = c.post("/alerts/inc-big/ack", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (body, r.status_code, r.text)
        assert not api.services.alerts.store.get("inc-big").acknowledged  # nothing half-done
        ok = c.post("/alerts/inc-big/ack", json={"note": "fine"})
        assert ok.status_code == 200


def test_alerts_sent_while_the_api_was_down_arrive_when_it_returns(make_api, analytics, tmp_path):
    first = make_api()
    wait_for(lambda: first.services.alerts.subscriber.connected())
    settings = first.settings
    first.stop()
    analytics.publish(alert("inc-while-down", severity="critical"))
    from tests.api.harness import start_api

    second = start_api(settings)  # same account, same database: the durable session hands the alert over
    try:
        wait_for(lambda: second.services.alerts.store.find()[1] == 1, timeout_s=5)
        assert second.services.alerts.store.get("inc-while-down").severity == "critical"
    finally:
        second.stop()
