"""Alarm management through the live API (real Mosquitto and influxd): priority by consequence,
shelving, maintenance (out of service), grouping, flood, chattering, stale alarms and the KPIs."""

import sqlite3
import time

import pytest

from api.app import create_app
from tests.api.harness import KEY_NAMES, alert, wait_for
from tests.conftest import make_settings

NOW = lambda: int(time.time() * 1000)  # noqa: E731


def raise_alarm(api, incident: str, **fields):
    """An alarm from analytics, applied as the subscriber applies it (store, streams, notifier)."""
    api.services.alerts.apply(alert(incident, **fields))
    return api.services.alerts.store.get(incident)


def board(client) -> list[str]:
    return sorted(a["id"] for a in client.get("/alerts", params={"board": "true", "limit": 1000}).json()["data"])


def register(api, device: str, kind: str = "water", district: str = "bukit-bestari"):
    from telemetry_shared.registry import DeviceNew

    api.services.registry.add(DeviceNew(id=device, kind=kind, district=district))


def audit_rows(api) -> tuple[int, int]:
    conn = sqlite3.connect(api.settings.api_db_file)
    try:
        return (conn.execute("SELECT count(*) FROM alert_audit").fetchone()[0],
                conn.execute("SELECT count(*) FROM alarm_audit").fetchone()[0])
    finally:
        conn.close()


# ---------------------------------------------------------------- priority


def test_priority_follows_consequence_not_the_detectors_severity(api, analytics):
    analytics.publish(alert("inc-burst", device="wtr-0001", rule="pressure_low", severity="warning"))
    analytics.publish(alert("inc-stuck", device="pwr-0001", kind="power", metric="frequency_hz",
                            rule="stuck_sensor", severity="critical"), device="pwr-0001")
    for n, rule in (("sag", "voltage_out_of_range"), ("dark", "supply_lost")):
        analytics.publish(alert(f"inc-{n}", device=f"pwr-000{len(n)}", kind="power", metric="voltage_v", rule=rule,
                                severity="critical"), device=f"pwr-000{len(n)}")
    with api.client("operator") as op:
        wait_for(lambda: op.get("/alerts").json()["count"] == 4)
        by_id = {a["id"]: a for a in op.get("/alerts").json()["data"]}
        assert by_id["inc-burst"]["priority"] == "high"  # no water at the taps
        assert by_id["inc-stuck"]["priority"] == "low"  # a stuck frequency meter: maintenance, however sure
        assert by_id["inc-sag"]["priority"] == "medium"  # a sag on one meter: appliances at risk within the shift
        assert by_id["inc-dark"]["priority"] == "high"  # no power at all
        assert sorted(a["id"] for a in op.get("/alerts", params={"priority": "high"}).json()["data"]) == [
            "inc-burst", "inc-dark"]


def test_priority_overrides_come_from_the_settings_and_bad_ones_refuse_to_start(make_api, tmp_path, mosquitto):
    api = make_api(api_alarm_priorities={"water:pressure_low": "medium", "*:stuck_sensor": "medium"})
    assert raise_alarm(api, "inc-p", rule="pressure_low").priority == "medium"
    assert raise_alarm(api, "inc-s", device="wtr-0002", rule="stuck_sensor").priority == "medium"
    for bad, named in (({"gas:pressure_low": "high"}, "gas:pressure_low"), ({"water:x": "urgent"}, "urgent"),
                       ({"pressure_low": "high"}, "pressure_low")):
        with pytest.raises(ValueError, match=named):
            create_app(make_settings(tmp_path / "bad", mosquitto, api_alarm_priorities=bad))


# ---------------------------------------------------------------- shelving


def test_operator_shelves_with_a_reason_and_the_alarm_returns_by_itself(make_api):
    api = make_api(api_alarm_check_s=0.2)
    raise_alarm(api, "inc-sh", severity="critical")
    with api.client("operator") as op, api.client("technician") as tech:
        assert board(op) == ["inc-sh"]
        assert tech.post("/alerts/inc-sh/shelve", json={"minutes": 1, "reason": "x"}).status_code == 403
        no_reason = op.post("/alerts/inc-sh/shelve", json={"minutes": 1, "reason": "  "})
        assert no_reason.status_code == 422
        done = op.post("/alerts/inc-sh/shelve", json={"minutes": 0.04, "reason": "crew on site, known leak"})
        assert done.status_code == 200, done.text
        shelved = done.json()
        assert shelved["shelved_by"] == KEY_NAMES["operator"] and shelved["shelved_reason"].startswith("crew")
        assert board(op) == []
        assert [a["id"] for a in op.get("/alarms/state").json()["shelved"]] == ["inc-sh"]
        again = op.post("/alerts/inc-sh/shelve", json={"minutes": 1, "reason": "again"})
        assert again.status_code == 409 and "already shelved" in again.json()["message"]
        # 2.4 s later it is back, by itself, and the audit says who shelved, why, and that time ended it
        wait_for(lambda: board(op) == ["inc-sh"], timeout_s=6)
        trail = [(e["actor"], e["action"], e["note"]) for e in op.get("/alerts/inc-sh").json()["audit"]]
        assert trail[-2:] == [(KEY_NAMES["operator"], "shelved", "crew on site, known leak"),
                              ("system", "unshelved", "shelving time over")]
        assert op.get("/alarms/state").json()["shelved"] == []


def test_shelving_past_the_maximum_is_refused_and_changes_nothing(make_api):
    api = make_api(api_alarm_shelve_max_s=3600)
    raise_alarm(api, "inc-max")
    before = audit_rows(api)
    with api.client("operator") as op:
        refused = op.post("/alerts/inc-max/shelve", json={"minutes": 61, "reason": "all night"})
        assert refused.status_code == 422
        assert "at most 60 minutes" in refused.json()["message"]
        assert board(op) == ["inc-max"]
        assert audit_rows(api) == before
        assert op.post("/alerts/nope/shelve", json={"minutes": 5, "reason": "x"}).status_code == 404
        assert op.post("/alerts/inc-max/unshelve", json={}).status_code == 409  # not shelved
        op.post("/alerts/inc-max/resolve", json={"note": "fixed"})
        assert op.post("/alerts/inc-max/shelve", json={"minutes": 5, "reason": "x"}).status_code == 409
    assert api.services.alerts.store.get("inc-max").shelved_until_ms is None


def test_unshelve_by_hand_puts_it_back_at_once(api):
    raise_alarm(api, "inc-un")
    with api.client("operator") as op:
        op.post("/alerts/inc-un/shelve", json={"minutes": 30, "reason": "testing the pump"})
        assert board(op) == []
        back = op.post("/alerts/inc-un/unshelve", json={"note": "pump test over"})
        assert back.status_code == 200 and back.json()["shelved_until_ms"] is None
        assert board(op) == ["inc-un"]


def test_a_shelved_alarm_is_not_escalated(make_api):
    api = make_api(api_escalate_after_s=0.01)
    raise_alarm(api, "inc-esc")
    with api.client("operator") as op:
        op.post("/alerts/inc-esc/shelve", json={"minutes": 30, "reason": "known"})
    time.sleep(0.05)
    assert api.services.alerts.escalate_now() == []


# ---------------------------------------------------------------- maintenance


def test_maintenance_suppresses_the_devices_alarms_and_ends_by_itself(make_api):
    api = make_api(api_alarm_check_s=0.2)
    register(api, "wtr-0001")
    raise_alarm(api, "inc-before")
    with api.client("technician") as tech, api.client("operator") as op:
        assert board(op) == ["inc-before"]
        assert op.post("/devices/wtr-0001/maintenance", json={"minutes": 1, "note": "x"}
                       ).status_code == 403
        started = tech.post("/devices/wtr-0001/maintenance", json={"minutes": 2.5 / 60,
                                                                   "note": "replacing the pressure sensor"})
        assert started.status_code == 200, started.text
        assert started.json()["alerts"] == ["inc-before"]
        assert board(op) == []
        # an alarm raised during the work is suppressed too, and says why
        during = raise_alarm(api, "inc-during", updated_ms=NOW())
        assert during.suppressed and during.priority == "high"
        assert board(op) == []
        fleet = {d["id"]: d for d in op.get("/fleet/devices").json()["data"]}
        assert fleet["wtr-0001"]["maintenance_until_ms"] == started.json()["maintenance"]["until_ms"]
        state = op.get("/alarms/state").json()
        assert state["suppressed"] == 2 and [m["device"] for m in state["maintenance"]] == ["wtr-0001"]
        # its time is up: both alarms are back, by themselves
        wait_for(lambda: board(op) == ["inc-before", "inc-during"], timeout_s=6)
        assert op.get("/fleet/devices").json()["data"][0]["maintenance_until_ms"] is None
        actions = [e["action"] for e in op.get("/alarms/audit", params={"subject": "wtr-0001"}).json()["data"]]
        assert actions == ["maintenance_started", "maintenance_expired"]
        trail = [e["action"] for e in op.get("/alerts/inc-during").json()["audit"]]
        assert trail == ["opened", "suppressed", "returned_to_service"]


def test_maintenance_stopped_by_hand(api):
    register(api, "wtr-0001")
    with api.client("technician") as tech, api.client("operator") as op:
        tech.post("/devices/wtr-0001/maintenance", json={"minutes": 60, "note": "flushing"})
        raise_alarm(api, "inc-m")
        assert board(op) == []
        stopped = tech.delete("/devices/wtr-0001/maintenance")
        assert stopped.status_code == 200 and stopped.json()["alerts"] == ["inc-m"]
        assert stopped.json()["maintenance"]["end_reason"] == "stopped"
        assert board(op) == ["inc-m"]
        assert tech.delete("/devices/wtr-0001/maintenance").status_code == 409


@pytest.mark.parametrize("device, body, status, message", [
    ("wtr-9999", {"note": "x"}, 404, "no device wtr-9999"),
    ("wtr-0003", {"note": "x"}, 409, "retired"),
    ("wtr-0001", {"note": "x", "minutes": 0}, 422, ""),
    ("wtr-0001", {"note": "x", "minutes": -5}, 422, ""),
    ("wtr-0001", {"note": "x", "minutes": "far"}, 422, ""),
    ("wtr-0001", {"note": "x", "minutes": True}, 422, ""),
    ("wtr-0001", {"note": "x", "minutes": 15 * 1440}, 422, "at most 336 h"),
    ("wtr-0001", {"note": "x", "until_ms": NOW() + 60_000}, 422, ""),
    ("wtr-0001", {"note": " "}, 422, ""),
    ("wtr-0001", {"note": "x" * 501}, 422, ""),
])
def test_bad_maintenance_requests_are_refused_and_leave_nothing_behind(api, device, body, status, message):
    register(api, "wtr-0001")
    register(api, "wtr-0003")
    api.services.registry.update("wtr-0003", state="retired")
    raise_alarm(api, "inc-keep")
    before = audit_rows(api)
    with api.client("technician") as tech, api.client("operator") as op:
        answer = tech.post(f"/devices/{device}/maintenance", json={"minutes": 5} | body)
        assert answer.status_code == status, answer.text
        assert message in answer.json()["message"]
        assert audit_rows(api) == before
        assert op.get("/maintenance").json()["count"] == 0
        assert board(op) == ["inc-keep"]
        assert tech.delete("/devices/wtr-9999/maintenance").status_code == 404


def test_a_second_maintenance_of_the_same_device_is_a_conflict(api):
    register(api, "wtr-0001")
    with api.client("technician") as tech:
        assert tech.post("/devices/wtr-0001/maintenance", json={"minutes": 1, "note": "a"}).is_success
        before = audit_rows(api)
        second = tech.post("/devices/wtr-0001/maintenance", json={"minutes": 2, "note": "b"})
        assert second.status_code == 409 and "already under maintenance" in second.json()["message"]
        assert audit_rows(api) == before and tech.get("/maintenance").json()["count"] == 1


# ---------------------------------------------------------------- grouping, flood, chattering, stale


def test_alarms_of_one_district_and_utility_within_a_minute_become_one_group(api):
    raise_alarm(api, "inc-g1", device="wtr-0001")
    raise_alarm(api, "inc-g2", device="wtr-0002")
    raise_alarm(api, "inc-g3", device="wtr-0003")
    raise_alarm(api, "inc-other", device="wtr-0004", district="tanjungpinang-kota")
    with api.client("operator") as op:
        assert board(op) == ["inc-g1", "inc-other"]
        children = op.get("/alerts", params={"group": "inc-g1"}).json()["data"]
        assert sorted(a["id"] for a in children) == ["inc-g2", "inc-g3"]
        # the root resolved: its children stand on their own again
        op.post("/alerts/inc-g1/resolve", json={"note": "valve closed"})
        assert board(op) == ["inc-g2", "inc-g3", "inc-other"]


def test_a_root_resolved_with_a_cause_resolves_its_open_children_with_it_and_keeps_their_own(api):
    for n in (1, 2, 3, 4):
        raise_alarm(api, f"inc-c{n}", device=f"wtr-000{n}")
    with api.client("operator") as op:
        assert sorted(a["id"] for a in op.get("/alerts", params={"group": "inc-c1"}).json()["data"]) == [
            "inc-c2", "inc-c3", "inc-c4"]
        assert op.post("/alerts/inc-c3/resolve", json={"note": "pipe cracked", "cause": "fault"}).status_code == 200
        answer = op.post("/alerts/inc-c1/resolve", json={"note": "hydrant test", "cause": "planned_work"})
        assert answer.status_code == 200, answer.text
        by_id = {a["id"]: a for a in op.get("/alerts", params={"limit": 100}).json()["data"]}
        root = by_id["inc-c1"]
        for child in ("inc-c2", "inc-c4"):  # open children: resolved with the root's cause, by the same person
            assert by_id[child]["resolved"] and by_id[child]["resolution_cause"] == "planned_work"
            assert by_id[child]["resolved_by"] == root["resolved_by"]
            audit = op.get(f"/alerts/{child}").json()["audit"]
            assert [(e["action"], e["note"], e["detail"]) for e in audit if e["action"] == "resolved"] == [
                ("resolved", "with its root inc-c1", {"cause": "planned_work", "root": "inc-c1"})]
        assert by_id["inc-c3"]["resolution_cause"] == "fault"  # resolved before, with its own cause: kept
        assert board(op) == []
        # learning sees every alarm of the group: three planned-work dismissals, one per device
        kpis = op.get("/alarms/kpis").json()
        assert kpis["planned_work"] == 3, kpis


def test_a_district_without_power_groups_the_silence_and_flow_alarms_that_follow(api):
    raise_alarm(api, "inc-root", device="pwr-0001", kind="power", metric="voltage_v", rule="supply_lost",
                severity="critical")
    raise_alarm(api, "inc-quiet", device="wtr-0001", metric="", rule="silent")
    raise_alarm(api, "inc-flow", device="wtr-0002", metric="flow_lps", rule="unusual_value")
    raise_alarm(api, "inc-ward", device="bld-0001", kind="building", metric="beds_free", rule="ward_full")
    with api.client("operator") as op:
        # the ward is not a consequence of the outage; the water alarms are (and join the root, not each other)
        assert board(op) == ["inc-root", "inc-ward"]
        assert op.get("/alerts/inc-root").json()["alert"]["priority"] == "high"
        assert sorted(a["id"] for a in op.get("/alerts", params={"group": "inc-root"}).json()["data"]) == [
            "inc-flow", "inc-quiet"]


def test_more_than_10_new_alarms_in_10_minutes_is_a_flood(api):
    districts = api.settings.city.slugs
    with api.client("operator") as op:
        for n in range(10):  # different devices, districts and utilities: nothing groups them
            raise_alarm(api, f"inc-f{n}", device=f"wtr-{n:04d}", district=districts[n % len(districts)],
                        kind=("water", "power", "building", "traffic")[n // len(districts) % 4])
        flood = op.get("/alarms/state").json()["flood"]
        assert (flood["active"], flood["new_alarms"], flood["threshold"]) == (False, 10, 10)
        raise_alarm(api, "inc-f10", device="trf-0010", kind="traffic", district=districts[-1])
        assert op.get("/alarms/state").json()["flood"]["active"] is True


def test_an_alarm_raising_3_times_in_a_minute_is_held_back_as_chattering(api):
    with api.client("operator") as op:
        for n in range(3):  # analytics opens a new incident each time the series crosses again
            raise_alarm(api, f"inc-c{n}", device="wtr-0007", metric="flow_lps", rule="level_shift",
                        district="tanjungpinang-barat")
            api.services.alerts.apply(alert(f"inc-c{n}", device="wtr-0007", metric="flow_lps", rule="level_shift",
                                            district="tanjungpinang-barat", state="cleared", updated_ms=NOW() + 1))
        assert board(op) == []  # not one of the three left on the board
        state = op.get("/alarms/state").json()
        assert sorted(a["id"] for a in state["chattering"]) == ["inc-c0", "inc-c1", "inc-c2"]
        assert "raised 3 times" in op.get("/alerts/inc-c2").json()["audit"][1]["note"]


def test_an_alarm_standing_more_than_24_h_is_stale(api):
    raise_alarm(api, "inc-old", started_ms=NOW() - 25 * 3_600_000)
    raise_alarm(api, "inc-new", device="wtr-0002", district="tanjungpinang-kota")
    with api.client("operator") as op:
        assert [a["id"] for a in op.get("/alarms/state").json()["stale"]] == ["inc-old"]


# ---------------------------------------------------------------- KPIs


def test_kpis_count_what_the_operator_saw(make_api):
    api = make_api(api_alarm_operator_positions=2)
    districts = api.settings.city.slugs
    t0 = NOW()
    for n in range(12):  # annunciated: 12 in one 10-minute period, a flood
        raise_alarm(api, f"inc-k{n}", device=f"pwr-{n:04d}", kind="power", metric="voltage_v",
                    rule=("supply_lost" if n < 2 else "drift"), district=districts[n % len(districts)],
                    started_ms=t0 - 1000 - n)
        if n < 11:  # nothing groups them: as if each came more than the group window after the one before
            api.services.alerts.store.db.conn.execute("UPDATE alerts SET received_ms = received_ms - 61000")
    raise_alarm(api, "inc-grouped", device="pwr-0099", kind="power", metric="voltage_v", rule="drift",
                district=districts[11 % len(districts)])
    with api.client("operator") as op:
        op.post("/alerts/inc-k0/ack", json={})
        op.post("/alerts/inc-k1/resolve", json={"note": "breaker reset"})
        # never on the board: resolving it acknowledges it, which is no operator's time to acknowledge
        assert op.post("/alerts/inc-grouped/resolve", json={"note": "with its district"}).status_code == 200
        k = op.get("/alarms/kpis").json()  # the last 24 h
        assert op.get("/alarms/kpis", params={"since": "24h"}).json()["annunciated"] == 12
        shift = op.get("/alarms/kpis", params={"since": "8h"}).json()
        assert (shift["hours"], shift["per_operator_hour"]) == (8.0, round(12 / 8 / 2, 2))
        exact = op.get("/alarms/kpis", params={"start_ms": t0 - 600_000, "end_ms": t0 + 60_000}).json()
        assert (exact["annunciated"], exact["periods"]) == (12, 2)
        empty = op.get("/alarms/kpis", params={"start_ms": t0 + 10**6, "end_ms": t0}).json()
        assert (empty["raised"], empty["hours"]) == (0, 0.0)  # a range that ends before it starts is empty
        started = time.monotonic()
        everything = op.get("/alarms/kpis", params={"start_ms": 0, "end_ms": 10**14})  # 3,000 years
        assert everything.status_code == 200 and everything.json()["annunciated"] == 12
        assert time.monotonic() - started < 2  # periods without alarms cost nothing
        for bad in ({"since": "yesterday"}, {"since": "-1h"}, {"start_ms": "x"}, {"end_ms": -1}):
            assert op.get("/alarms/kpis", params=bad).status_code == 422, bad
    assert (k["raised"], k["annunciated"]) == (13, 12)
    assert k["per_10min_max"] == 12 and k["periods_in_flood"] == 1 and k["periods"] == 144
    assert k["flood_percent"] == round(100 / 144, 2)
    assert k["per_operator_hour"] == round(12 / 24 / 2, 2)
    assert k["priority_mix"] == {"high": 2, "medium": 0, "low": 10}
    assert k["time_to_ack"]["count"] == 2 and k["time_to_resolve"]["count"] == 2
    assert k["top_sources"][0]["raises"] == 1 and len(k["top_sources"]) == 10
    assert k["operator_positions"] == 2


def test_the_kpis_reach_influxdb_and_the_grafana_panels_read_them(make_api, influx_db):
    from grafana.boards import device_health
    from grafana.queries import fill_variables

    api = make_api(api_alarm_kpi_every_s=0.3)
    raise_alarm(api, "inc-g", rule="pressure_low")  # high
    raise_alarm(api, "inc-s", device="pwr-0002", kind="power", metric="frequency_hz", rule="stuck_sensor",
                district="tanjungpinang-kota")  # low
    rows = wait_for(lambda: [r for r in influx_db.rows('SELECT last("annunciated") AS n, last("priority_high") AS '
                                                       'high, last("priority_low") AS low FROM "alarm_kpis"')
                             if r["n"] == 2], timeout_s=10)
    assert (rows[0]["high"], rows[0]["low"]) == (1, 1)
    panels = {p.title: p for p in device_health().panels}
    now = NOW()
    values = {"timeFilter": f"time >= {now - 600_000}ms and time <= {now + 60_000}ms", "__interval": "1m"}
    for title in ("Alarm load", "Alarm states"):
        for target in panels[title].targets:
            answered = [v for s in influx_db.series(fill_variables(target.query, values))
                        for row in s.get("values", []) for v in row[1:] if v is not None]
            assert answered, f"{title}: {target.query} returned nothing"


def test_an_advisory_is_kept_and_counted_but_is_not_an_alarm(api):
    co2 = raise_alarm(api, "inc-co2", device="bld-0001", kind="building", metric="co2_ppm", rule="co2_high",
                      severity="info")
    hot = raise_alarm(api, "inc-hot", device="bld-0002", kind="building", metric="temperature_c",
                      rule="level_shift", district="tanjungpinang-kota")
    assert (co2.priority, co2.on_board) == ("advisory", False)
    assert hot.priority == "medium"  # a failed cooling, before the 32 degC limit (a metric-specific entry)
    with api.client("operator") as op:
        assert board(op) == ["inc-hot"]
        assert [a["id"] for a in op.get("/alarms/state").json()["advisories"]] == ["inc-co2"]
        k = op.get("/alarms/kpis").json()
    assert (k["raised"], k["advisories"], k["annunciated"]) == (2, 1, 1)
    assert k["priority_mix"] == {"high": 0, "medium": 1, "low": 0}
    from api.alarms.priority import PriorityTable

    assert PriorityTable({"building.co2_ppm:co2_high": "low"})("building", "co2_high", "co2_ppm") == "low"
    with pytest.raises(ValueError, match="building.flow_lps"):  # a metric the kind does not have
        PriorityTable({"building.flow_lps:unusual_value": "high"})
    with pytest.raises(ValueError, match="urgent"):
        PriorityTable({"building.co2_ppm:co2_high": "urgent"})


# ---------------------------------------------------------------- learning from dismissals


def dismiss(api, client, incident: str, cause: str, **fields) -> None:
    raise_alarm(api, incident, **fields)
    answer = client.post(f"/alerts/{incident}/resolve", json={"note": "checked on site", "cause": cause})
    assert answer.status_code == 200 and answer.json()["resolution_cause"] == cause, answer.text


def proposals(client) -> list[dict]:
    return client.get("/alarms/tuning").json()["data"]


def test_two_false_alarms_propose_a_score_cutoff_by_themselves_that_the_engines_apply_and_undo(make_api):
    from analytics.engine import AnalyticsEngine
    from telemetry_shared.detector_tuning import DetectorTuningStore

    api = make_api(api_alarm_chatter_count=100)  # a week of dismissals in seconds is not chattering here
    noisy = {"device": "pwr-0009", "kind": "power", "metric": "current_a", "rule": "drift",
             "district": "tanjungpinang-timur"}
    register(api, "pwr-0009", "power", "tanjungpinang-timur")
    engine = AnalyticsEngine(api.services.registry)  # an analytics engine on the same registry file
    engine.tuning.check_s = 0
    held = lambda score: engine.tuning.holds("pwr-0009", "current_a", "drift", score, 5.0, NOW())  # noqa: E731
    with api.client("operator") as op, api.client("engineer") as eng:
        dismiss(api, op, "inc-real", "fault", score=0.97, **noisy)
        dismiss(api, op, "inc-fa0", "false_alarm", score=0.85, **noisy)
        dismiss(api, op, "inc-once", "false_alarm", device="wtr-0002")  # one dismissal of a source: nothing
        assert proposals(op) == []
        dismiss(api, op, "inc-fa1", "false_alarm", score=0.87, **noisy)  # the second: proposed by itself
        [tuning] = proposals(op)
        assert (tuning["device"], tuning["metric"], tuning["rule"], tuning["state"]) == (
            "pwr-0009", "current_a", "drift", "proposed")
        assert (tuning["change"], tuning["params"]) == ("score_cutoff", {"min_score": 0.88})
        assert tuning["effect"] | {"window_days": 0} == {"window_days": 0, "alarms": 3, "held": 2, "false_alarms": 2,
                                                         "real_faults": 0, "planned_work": 0, "undecided": 0,
                                                         "board_share_percent": 75.0}
        dismiss(api, op, "inc-fa2", "false_alarm", score=0.89, **noisy)
        [again] = proposals(op)  # never proposed twice while one is open: measured again
        assert (again["id"], again["params"], again["effect"]["held"]) == (tuning["id"], {"min_score": 0.9}, 3)
        raise_alarm(api, "inc-elsewhere", device="wtr-0011")  # the source's share of all alarms moves ...
        assert eng.post("/alarms/tuning/propose").json()["count"] == 0  # ... but its dismissals did not: no new row
        assert held(0.86) is None  # proposed is not approved: the engines change nothing yet

        assert op.post(f"/alarms/tuning/{tuning['id']}/approve", json={}).status_code == 403
        approved = eng.post(f"/alarms/tuning/{tuning['id']}/approve", json={"note": "noisy clamp, exchange due"})
        assert approved.status_code == 200 and approved.json()["decided_by"] == KEY_NAMES["engineer"]
        store = DetectorTuningStore(api.settings.registry_file)
        [change] = store.changes()
        assert (change.tuning_id, change.device, change.metric, change.change, change.params) == (
            tuning["id"], "pwr-0009", "current_a", "score_cutoff", {"min_score": 0.9})
        assert held(0.86) == tuning["id"] and held(0.95) is None  # a clear drift still alarms
        before = audit_rows(api)
        twice = eng.post(f"/alarms/tuning/{tuning['id']}/approve", json={})
        assert twice.status_code == 409 and "approved" in twice.json()["message"]
        assert eng.post(f"/alarms/tuning/{tuning['id']}/reject", json={}).status_code == 409
        assert audit_rows(api) == before and len(store.changes()) == 1  # refused: nothing written anywhere
        assert eng.post("/alarms/tuning/999/approve", json={}).status_code == 404
        assert raise_alarm(api, "inc-later", score=0.95, **noisy).on_board  # what passes the cut-off is an alarm

        undone = eng.post(f"/alarms/tuning/{tuning['id']}/undo", json={"note": "clamp exchanged"}).json()
        assert (undone["state"], undone["undone_by"]) == ("undone", KEY_NAMES["engineer"])
        assert store.changes() == [] and held(0.86) is None
        trail = [e["action"] for e in op.get("/alarms/audit", params={"subject": f"tuning:{tuning['id']}"}
                                             ).json()["data"]]
        assert trail == ["tuning_proposed", "tuning_remeasured", "tuning_approved", "tuning_undone"]
        store.close()


def test_planned_work_proposes_a_calendar_exception_for_the_device_in_city_time(make_api):
    from telemetry_shared.detector_tuning import DetectorTuningStore, TuningCache

    api = make_api(api_alarm_chatter_count=100)
    tue = 1_767_665_400_000  # Tuesday 2026-01-06 09:10 in the city (UTC+7)
    with api.client("operator") as op, api.client("engineer") as eng:
        dismiss(api, op, "inc-pw0", "planned_work", device="wtr-0003", started_ms=tue)
        # the work moves another reading the next day: the same device's planned work
        dismiss(api, op, "inc-pw1", "planned_work", device="wtr-0003", metric="flow_lps", rule="level_shift",
                started_ms=tue + 86_400_000 + 600_000)
        [tuning] = proposals(op)
        assert (tuning["device"], tuning["metric"], tuning["rule"]) == ("wtr-0003", "*", "*")
        assert (tuning["change"], tuning["params"]) == ("calendar", {"weekdays": [1, 2], "from_h": 9, "to_h": 10})
        assert (tuning["effect"]["held"], tuning["effect"]["planned_work"]) == (2, 2)
        assert eng.post(f"/alarms/tuning/{tuning['id']}/approve", json={}).status_code == 200
        [change] = DetectorTuningStore(api.settings.registry_file).changes()
        assert change.change == "calendar" and change.holds(1.0, None, tue + 7 * 86_400_000, "", 7)  # a week later
        assert not change.holds(1.0, None, tue + 2 * 3_600_000, "", 7)  # 11:10: after the work
        cache = TuningCache(DetectorTuningStore(api.settings.registry_file))  # as an engine reads it
        for metric in ("pressure_bar", "flow_lps", ""):  # every metric of the device, and its device-wide rules
            assert cache.holds("wtr-0003", metric, "unusual_value", 1.0, None, tue + 7 * 86_400_000, "", 7)
        assert cache.holds("wtr-0004", "pressure_bar", "pressure_low", 1.0, None, tue, "", 7) is None
        dismiss(api, op, "inc-pw2", "planned_work", device="wtr-0003", started_ms=tue + 2 * 86_400_000)
        assert len(proposals(op)) == 1  # approved: not proposed again


def test_false_limit_breaches_make_their_source_advisory_and_an_unwritable_registry_decides_nothing(make_api):
    api = make_api(api_alarm_chatter_count=100)
    with api.client("operator") as op, api.client("engineer") as eng:
        for n in range(2):  # pressure below the limit scores 1.0: no cut-off tells these from a burst
            dismiss(api, op, f"inc-lim{n}", "false_alarm", device="wtr-0004", score=1.0)
        dismiss(api, op, "inc-pwx", "planned_work", device="wtr-0005")
        dismiss(api, op, "inc-pwy", "planned_work", device="wtr-0005")
        by_device = {t["device"]: t for t in proposals(op)}
        assert by_device["wtr-0004"]["change"] == "advisory" and by_device["wtr-0005"]["change"] == "calendar"
        assert eng.post(f"/alarms/tuning/{by_device['wtr-0004']['id']}/approve", json={}).status_code == 200
        later = raise_alarm(api, "inc-lim9", device="wtr-0004", score=1.0)
        assert (later.priority, later.on_board) == ("advisory", False)  # the API's policy, not the detectors
        assert op.get("/alerts/inc-lim9").json()["audit"][-1]["action"] == "tuned"

        tuning = api.services.alerts.alarms.tuning
        tuning.detector.db.close()  # the registry file cannot be written (a full disk, a lost volume)
        before = audit_rows(api)
        failed = eng.post(f"/alarms/tuning/{by_device['wtr-0005']['id']}/approve", json={})
        assert failed.status_code == 503 and "nothing was decided" in failed.json()["message"]
        assert audit_rows(api) == before and tuning.get(by_device["wtr-0005"]["id"]).state == "proposed"


def test_a_rejected_proposal_changes_nothing_and_a_bad_cause_is_refused(make_api):
    api = make_api(api_alarm_chatter_count=100)
    with api.client("operator") as op, api.client("engineer") as eng:
        for n in range(2):
            dismiss(api, op, f"inc-r{n}", "false_alarm")
        tuning = proposals(op)[0]
        assert eng.post(f"/alarms/tuning/{tuning['id']}/reject", json={"note": "real pressure drops"}).is_success
        assert eng.post(f"/alarms/tuning/{tuning['id']}/undo", json={}).status_code == 409
        assert raise_alarm(api, "inc-r9").on_board
        assert [t["state"] for t in op.get("/alarms/tuning").json()["data"]] == ["rejected"]
        raise_alarm(api, "inc-bad", device="wtr-0005", district="tanjungpinang-kota")
        bad = op.post("/alerts/inc-bad/resolve", json={"note": "x", "cause": "bored"})
        assert bad.status_code == 422 and not api.services.alerts.store.get("inc-bad").resolved


class CommitFails:
    """The API database's connection whose next COMMIT fails (a full disk at that moment); the rest is real."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_decision_the_api_database_cannot_commit_is_undone_in_the_registry_file_too(make_api):
    from telemetry_shared.detector_tuning import DetectorTuningStore

    api = make_api(api_alarm_chatter_count=100)
    tuning = api.services.alerts.alarms.tuning
    registry = DetectorTuningStore(api.settings.registry_file)
    with api.client("operator") as op, api.client("engineer") as eng:
        dismiss(api, op, "inc-cw1", "planned_work", device="wtr-0006")
        dismiss(api, op, "inc-cw2", "planned_work", device="wtr-0006")
        [proposal] = proposals(op)
        real = tuning.db.conn
        for action, state, in_registry in (("approve", "proposed", []), ("undo", "approved", [proposal["id"]])):
            tuning.db.conn = CommitFails(real)
            try:
                failed = eng.post(f"/alarms/tuning/{proposal['id']}/{action}", json={})
            finally:
                tuning.db.conn = real
            assert failed.status_code == 503 and "nothing was decided" in failed.json()["message"], failed.text
            assert tuning.get(proposal["id"]).state == state
            assert [c.tuning_id for c in registry.changes()] == in_registry  # the registry agrees with the API
            if action == "approve":  # the disk has room again: the same approval goes through
                assert eng.post(f"/alarms/tuning/{proposal['id']}/approve", json={}).status_code == 200
                assert [c.tuning_id for c in registry.changes()] == [proposal["id"]]
