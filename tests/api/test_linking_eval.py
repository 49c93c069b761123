"""Linking measured against the detectors' own incidents on the simulated city (not incidents built from
labels): tests/api/linking_replay.py simulates the city as `city evaluate` does, lets the detectors find
the incidents, files complaints about the simulator's own faults (ground truth) and unrelated ones, and
replays both through the real alert store and linker. Goals: >= 90 % of fault complaints linked to an
incident of their own fault, < 5 % of unrelated complaints linked to a sensor incident. A small city here
(300 devices every 2 min, leaks, bursts and outages 4 times as frequent); the larger runs on the city as
it is: bench/bench_linking.py (figures in api/README.md)."""

from fleetsim.scenario import load_scenario

from api.alerts.service import AlertService
from api.citizens.complaints import ComplaintStore, NewComplaint
from api.citizens.linking import Linker
from api.citizens.protect import ContactVault
from api.db import ApiDb, now_ms
from tests.api.linking_replay import dense, measure, simulate, summary
from tests.conftest import make_settings


def test_complaints_link_to_the_detectors_incidents_of_their_faults(tmp_path, mosquitto):
    settings = make_settings(tmp_path, mosquitto)
    scenario = dense(load_scenario(city=settings.city), 4)
    sim = simulate(scenario, 300, 7, 192, 120, 120, settings.city.utc_offset_hours)
    m = measure(settings, tmp_path / "replay", sim)
    print("\n" + summary(m))
    assert m.faults >= 8, "the scenario injected too few citizen-visible faults to measure"
    assert m.found >= 8 and m.incidents > m.found, "the detectors' incidents (false alarms included) are replayed"
    assert m.right_share >= 0.90
    assert m.false_share < 0.05


def test_device_health_incidents_take_no_complaints(tmp_path, mosquitto):
    """A silent water meter in a district is no reason to link a citizen's 'no water' to it; a leak is."""
    settings = make_settings(tmp_path, mosquitto)
    district = settings.city.slugs[0]
    db = ApiDb(tmp_path / "api.sqlite3")
    alerts = AlertService(settings, db, subscribe=False)
    complaints = ComplaintStore(db, ContactVault(""), 10**9, 10**9)
    linker = Linker(alerts, complaints, 7200, 3, 1800)
    t = now_ms()
    for alert_id, rule in (("a-silent", "silent"), ("a-stuck", "stuck_sensor"), ("a-night", "night_flow_rise")):
        alerts.apply({"id": alert_id, "device": f"wtr-{alert_id}", "kind": "water", "district": district,
                      "metric": "", "rule": rule, "severity": "critical", "score": 1.0, "observed": None,
                      "expected": None, "explanation": rule, "started_ms": t - 60_000, "updated_ms": t - 60_000,
                      "state": "active"})
    first, _ = complaints.create(NewComplaint("no_water", district, "air mati sejak pagi"), client="10.9.0.1", t_ms=t)
    assert linker.on_complaint(first.id) is None
    alerts.apply({"id": "a-leak", "device": "wtr-leak", "kind": "water", "district": district, "metric": "flow_lps",
                  "rule": "level_shift", "severity": "critical", "score": 1.0, "observed": None, "expected": None,
                  "explanation": "leak", "started_ms": t + 60_000, "updated_ms": t + 60_000, "state": "active"})
    assert complaints.get(first.id).alert_id == "a-leak"  # the service incident that opened took it
    second, _ = complaints.create(NewComplaint("low_pressure", district, "air kecil"), client="10.9.0.2", t_ms=t + 1)
    assert linker.on_complaint(second.id) == "a-leak"


def test_an_old_incident_nobody_complained_about_takes_no_late_complaint(tmp_path, mosquitto):
    """A sensor drifting for hours in a district (rule `drift`, as a leak can be) is not what a 'no water'
    filed hours later is about; an old incident citizens confirmed (3 complaints) takes the next complaint."""
    settings = make_settings(tmp_path, mosquitto)
    district = settings.city.slugs[0]
    db = ApiDb(tmp_path / "api.sqlite3")
    alerts = AlertService(settings, db, subscribe=False)
    complaints = ComplaintStore(db, ContactVault(""), 10**9, 10**9)
    linker = Linker(alerts, complaints, 7200, 3, 1800)
    t = now_ms()
    for alert_id, started in (("a-drift", t - 5 * 3_600_000), ("a-leak", t - 4 * 3_600_000)):
        alerts.apply({"id": alert_id, "device": f"wtr-{alert_id}", "kind": "water", "district": district,
                      "metric": "flow_lps", "rule": "drift", "severity": "critical", "score": 1.0, "observed": None,
                      "expected": None, "explanation": "drift", "started_ms": started, "updated_ms": started,
                      "state": "active"})
    for n in range(3):  # as many as would raise a citizen-reported alert of their own
        early, _ = complaints.create(NewComplaint("leak", district, f"pipa bocor di jalan {n}"),
                                     client=f"10.9.1.{n}", t_ms=t - 4 * 3_600_000 + 600_000 + n)
        assert linker.on_complaint(early.id) == "a-leak"  # filed while it was fresh
        if n == 0:
            lone, _ = complaints.create(NewComplaint("no_water", district, "air mati"), client="10.9.2.1", t_ms=t)
            assert linker.on_complaint(lone.id) is None  # one chance complaint does not make it collect more
    late, _ = complaints.create(NewComplaint("no_water", district, "air mati sejak pagi"), client="10.9.1.9",
                                t_ms=t)
    assert linker.on_complaint(late.id) == "a-leak"  # citizens confirmed it: it takes more
    with db.transaction() as conn:
        conn.execute("DELETE FROM complaint_links")
    again, _ = complaints.create(NewComplaint("no_water", district, "air tidak mengalir"), client="10.9.1.3", t_ms=t)
    # two old incidents nobody reported: neither takes it (with the two unlinked ones: a citizens' cluster)
    assert linker.on_complaint(again.id) not in ("a-drift", "a-leak")
