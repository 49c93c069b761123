"""Linking measured on the simulated city: the simulator's own faults (ground truth: leaks, bursts and
power outages, the faults a citizen notices) become incidents on the board as analytics raises them
(one alert per fault, opened at its start, cleared at its end, resolved 30 min later), and citizens
complain about them: 1 to 4 complaints each, at random moments in the first two hours of the fault, in
its district, of a fitting category. Unrelated complaints come at moments and places where no fault of
their utility is on (or of category "other"). Everything is replayed in time order through the real
stores and linker (one SQLite file, as the API runs them).

Measured: the share of fault complaints linked to their own fault's incident (goal >= 90 %) and the
share of unrelated complaints linked to any sensor incident (goal < 5 %): at places and moments with no
fault of their utility, about another utility during a fault in its district, and about the same utility
in the same district 2.5 to 4 hours after the fault ended. Note: the incidents come from
the labels, not from the detectors (the detectors are measured by `city evaluate`)."""

import random
import time

from fleetsim.generate import build_devices
from fleetsim.plan import plan_fleet
from fleetsim.scenario import load_scenario

from api.alerts.service import AlertService
from api.citizens.complaints import ComplaintStore, NewComplaint
from api.citizens.linking import CITIZEN_RULE, Linker
from api.citizens.protect import ContactVault
from api.db import ApiDb
from tests.conftest import make_settings

NOTICED = {"leak": ("leak", "low_pressure", "no_water"), "burst": ("leak", "no_water"),
           "outage": ("power_out", "street_light")}
UTILITY = {"water": ("no_water", "low_pressure", "leak", "flooding"), "power": ("power_out", "street_light")}
HOURS = 96
MIN = 60_000


def test_complaints_link_to_their_faults_incidents(tmp_path, mosquitto):
    settings = make_settings(tmp_path, mosquitto)
    scenario = load_scenario(city=settings.city)
    start = int(time.time() * 1000) - HOURS * 3_600_000
    specs = plan_fleet(scenario, 2000, seed=7)
    _, faults = build_devices(scenario, specs, 7, start, start + HOURS * 3_600_000)
    where = {s["id"]: (s["kind"], s["district"]) for s in specs}
    faults = [f for f in faults if f.fault in NOTICED]
    assert len(faults) >= 20, "the scenario injected too few citizen-visible faults to measure"
    rng = random.Random(7)
    events = []  # (t_ms, order, what, payload)
    for n, f in enumerate(faults):
        kind, district = where[f.device]
        alert_id = f"inc-{n:04d}"
        base = {"id": alert_id, "device": f.device, "kind": kind, "district": district, "metric": f.metrics[0],
                "rule": f.fault, "severity": "critical", "score": 0.9, "observed": None, "expected": None,
                "explanation": f.fault, "started_ms": f.start_ms}
        events.append((f.start_ms, 0, "alert", base | {"state": "active", "updated_ms": f.start_ms}))
        events.append((f.end_ms, 0, "alert", base | {"state": "cleared", "updated_ms": f.end_ms}))
        events.append((f.end_ms + 30 * MIN, 1, "resolve", alert_id))
        for _ in range(rng.randint(1, 4)):
            t = rng.randint(f.start_ms + 2 * MIN, max(f.start_ms + 3 * MIN, min(f.end_ms, f.start_ms + 120 * MIN)))
            events.append((t, 2, "complaint", (alert_id, rng.choice(NOTICED[f.fault]), district)))
    districts = settings.city.slugs
    unrelated = 0
    while unrelated < 200:
        t = rng.randint(start, start + HOURS * 3_600_000)
        district = rng.choice(districts)
        code = rng.choice([*UTILITY["water"], *UTILITY["power"], "other", "traffic_light"])
        kind = next((k for k, codes in UTILITY.items() if code in codes), None)
        busy = kind and any(where[f.device] == (kind, district) and f.start_ms - 4 * 3_600_000 < t
                            < f.end_ms + 4 * 3_600_000 for f in faults)
        if not busy:
            events.append((t, 2, "complaint", (None, code, district)))
            unrelated += 1
    for f in faults:  # the hard ones: during a fault, in its district, about another utility; and the same
        kind, district = where[f.device]  # utility in the same district 2.5 to 4 h after the fault ended
        other = rng.choice([c for k, codes in UTILITY.items() if k != kind for c in codes] + ["traffic_light"])
        events.append((rng.randint(f.start_ms, max(f.start_ms + 1, f.end_ms)), 2, "complaint", (None, other, district)))
        late = f.end_ms + rng.randint(150 * MIN, 240 * MIN)
        if not any(where[g.device] == (kind, district) and g.start_ms - 4 * 3_600_000 < late < g.end_ms + 3_600_000
                   for g in faults if g is not f):
            events.append((late, 2, "complaint", (None, rng.choice(UTILITY[kind]), district)))
    events.sort(key=lambda e: (e[0], e[1]))

    db = ApiDb(tmp_path / "api.sqlite3")
    alerts = AlertService(settings, db, subscribe=False)
    complaints = ComplaintStore(db, ContactVault(""), 10**9, 10**9)
    linker = Linker(alerts, complaints, settings.api_citizen_link_window_s, settings.api_citizen_cluster_count,
                    settings.api_citizen_cluster_window_s)
    truth: dict[str, str | None] = {}
    for n, (t, _, what, payload) in enumerate(events):
        if what == "alert":
            alerts.apply(payload)
        elif what == "resolve":
            alerts.store.resolve(payload, "operator", "fixed")
        else:
            alert_id, code, district = payload
            new = NewComplaint(service_code=code, district=district, description=f"laporan {n} {code}")
            complaint, _ = complaints.create(new, client=f"10.0.{n}", t_ms=t)
            linker.on_complaint(complaint.id)
            truth[complaint.id] = alert_id
    linked = {c.id: c.alert_id for c in complaints.find(limit=100_000)[0]}
    rules = {a.id: a.rule for a in alerts.store.find(limit=100_000)[0]}
    fault_complaints = [cid for cid, a in truth.items() if a]
    right = sum(linked[cid] == truth[cid] for cid in fault_complaints) / len(fault_complaints)
    others = [cid for cid, a in truth.items() if a is None]
    false_links = sum(bool(linked[cid]) and rules[linked[cid]] != CITIZEN_RULE for cid in others) / len(others)
    clusters = sum(rule == CITIZEN_RULE for rule in rules.values())
    print(f"\n{len(faults)} faults, {len(fault_complaints)} fault complaints linked to their own incident: "
          f"{right:.1%}; {len(others)} unrelated complaints linked to a sensor incident: {false_links:.1%}; "
          f"citizen-reported alerts raised: {clusters}")
    assert right >= 0.90
    assert false_links < 0.05
