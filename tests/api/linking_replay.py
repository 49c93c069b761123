"""Linking measured against the detectors' own incidents on the simulated city (shared by
tests/api/test_linking_eval.py and bench/bench_linking.py).

1. fleetsim simulates the city (readings, faults and their labels: the ground truth), and the
   incidents are what the analytics engine raises from those readings, found the way `city evaluate`
   finds them (`analytics.evaluate.build_grid` + `detect`: every rule, the engine's hysteresis, one
   incident per device while any metric is anomalous, silence and clock alerts): false alarms, late
   openings, missed faults and all. No incident is built from a label.
2. Citizens complain about the faults a citizen notices (leaks, bursts, power outages): 1 to 4
   complaints each, at random moments in the first two hours of the fault, in its district, of a
   fitting category. Unrelated complaints come where and when no such fault of their utility is on
   (or of category "other"; lights dimming in a voltage sag count as seen too), about another utility
   during a fault in its district, and about the same utility in the same district 2.5 to 4 hours
   after the fault ended.
3. Incidents (opened at the detector's start, cleared at its end, resolved by an operator 30 min later)
   and complaints are replayed in time order through the real alert store and the real linker (one
   SQLite file, as the API runs them).

The right incident of a fault's complaint is one `city evaluate` would count as detecting that fault:
on the faulted device, overlapping the fault (up to `GRACE_STEPS` sampling steps after its end).
Measured: the share of fault complaints linked to a right incident, and the share of unrelated
complaints linked to any sensor incident (citizen-reported alerts, raised by clusters, are not sensor
incidents)."""

import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetsim.faults import Fault
from fleetsim.generate import generate

from analytics.config import DEFAULT_PARAMS
from analytics.evaluate import Alert, build_grid, detect
from api.alerts.service import AlertService
from api.citizens.complaints import CATEGORIES, ComplaintStore, NewComplaint
from api.citizens.linking import CITIZEN_RULE, Linker
from api.citizens.protect import ContactVault
from api.db import ApiDb
from telemetry_shared.settings import Settings

# what a citizen files about a fault they notice
NOTICED = {"leak": ("leak", "low_pressure", "no_water"), "burst": ("leak", "no_water"),
           "outage": ("power_out", "street_light")}
# faults a citizen may notice without our counting complaints about them (lights dim or flicker): a complaint
# then may well be about it, so none is made up as "unrelated" there
ALSO_SEEN = ("voltage_sag", "voltage_swell")
UTILITY: dict[str, list[str]] = {}
for _code, _kind in CATEGORIES.items():
    if _kind:
        UTILITY.setdefault(_kind, []).append(_code)
MIN = 60_000
HOUR = 3_600_000
GRACE_STEPS = 5  # as analytics.evaluate.match
START_MS = 1_767_200_400_000  # city evaluate's: 2026-01-01 00:00 at UTC+7


@dataclass
class Simulated:
    alerts: list[Alert]  # the detectors' incidents
    faults: list[Fault]  # every injected fault (ground truth)
    where: dict[str, tuple[str, str]]  # device -> (kind, district)
    step_ms: int
    count_from_ms: int  # complaints are filed from here on (the baselines have learnt the week)
    end_ms: int


def simulate(scenario: dict[str, Any], devices: int, seed: int, hours: float, interval_s: float,
             warmup_hours: float, utc_offset_h: int, start_ms: int = START_MS) -> Simulated:
    """The city simulated and its readings through the detectors, as `city evaluate` does."""
    readings, faults = generate(scenario, devices, seed, start_ms, hours, interval_s)
    step_ms = int(interval_s * 1000)
    where: dict[str, tuple[str, str]] = {}

    def noting(rows):  # the device's kind and district, as the registry would give them
        for row in rows:
            where.setdefault(row[0], (row[1], row[2]))
            yield row

    grid = build_grid(noting(readings), start_ms, step_ms, int(hours * 3600 // interval_s))
    alerts = detect(grid, replace(DEFAULT_PARAMS, utc_offset_h=utc_offset_h))
    return Simulated(alerts, faults, where, step_ms, start_ms + int(warmup_hours * HOUR),
                     start_ms + int(hours * HOUR))


def dense(scenario: dict[str, Any], factor: float) -> dict[str, Any]:
    """The scenario with `factor` times as many citizen-visible faults (more to measure in a short run,
    and more incidents at once in a district: harder to link right)."""
    faults = {name: dict(spec, share=spec["share"] * factor) if name in NOTICED else spec
              for name, spec in scenario["faults"].items()}
    return dict(scenario, faults=faults)


def _right_incidents(sim: Simulated, fault: Fault, ids: dict[int, str]) -> set[str]:
    grace = GRACE_STEPS * sim.step_ms
    return {ids[n] for n, a in enumerate(sim.alerts)
            if a.device == fault.device and a.start_ms < fault.end_ms + grace and a.end_ms > fault.start_ms}


def _complaints(sim: Simulated, noticed: list[Fault], districts: list[str], unrelated_count: int,
                rng: random.Random) -> list[tuple[int, int, str, tuple[int | None, str, str]]]:
    """(t_ms, order, "complaint", (index of its fault in `noticed` or None, category, district))."""
    events = []
    for n, f in enumerate(noticed):
        _, district = sim.where[f.device]
        for _ in range(rng.randint(1, 4)):
            t = rng.randint(f.start_ms + 2 * MIN, max(f.start_ms + 3 * MIN, min(f.end_ms, f.start_ms + 120 * MIN)))
            events.append((t, 2, "complaint", (n, rng.choice(NOTICED[f.fault]), district)))
    visible = [f for f in sim.faults if f.fault in NOTICED or f.fault in ALSO_SEEN]
    codes = [*[c for cs in UTILITY.values() for c in cs], "other"]
    made = 0
    while made < unrelated_count:
        t = rng.randint(sim.count_from_ms, sim.end_ms - 1)
        district = rng.choice(districts)
        code = rng.choice(codes)
        kind = CATEGORIES[code]
        busy = kind and any(sim.where[f.device] == (kind, district) and f.start_ms - 4 * HOUR < t < f.end_ms + 4 * HOUR
                            for f in visible)
        if not busy:
            events.append((t, 2, "complaint", (None, code, district)))
            made += 1
    for f in noticed:  # the hard ones: during a fault, in its district, about another utility; and the same
        kind, district = sim.where[f.device]  # utility in the same district 2.5 to 4 h after the fault ended
        other = rng.choice([c for k, cs in UTILITY.items() if k != kind for c in cs])
        events.append((rng.randint(f.start_ms, max(f.start_ms + 1, f.end_ms)), 2, "complaint", (None, other, district)))
        late = f.end_ms + rng.randint(150 * MIN, 240 * MIN)
        if late < sim.end_ms and not any(sim.where[g.device] == (kind, district) and g.start_ms - 4 * HOUR < late
                                         < g.end_ms + HOUR for g in visible if g is not f):
            events.append((late, 2, "complaint", (None, rng.choice(UTILITY[kind]), district)))
    return events


@dataclass
class Measured:
    faults: int  # citizen-visible faults complained about
    found: int  # of them, found by the detectors
    incidents: int  # detector incidents replayed
    fault_complaints: int
    right: int  # linked to a right incident
    right_of_found: int  # the same, counting only the found faults' complaints
    found_complaints: int
    unrelated: int
    false_links: int  # unrelated complaints linked to a sensor incident
    citizen_alerts: int  # citizen-reported alerts raised by clusters
    wrong: Counter  # why a fault complaint was not linked right: "missed fault", "other incident", "none", ...
    false_by_rule: Counter  # the rules of the sensor incidents unrelated complaints were linked to

    @property
    def right_share(self) -> float:
        return self.right / max(1, self.fault_complaints)

    @property
    def false_share(self) -> float:
        return self.false_links / max(1, self.unrelated)


def measure(settings: Settings, folder: Path, sim: Simulated, unrelated_count: int = 200, seed: int = 7) -> Measured:
    """Replay the detectors' incidents and the complaints through the alert store and the linker."""
    rng = random.Random(seed)
    noticed = [f for f in sim.faults if f.fault in NOTICED and f.start_ms >= sim.count_from_ms
               and f.end_ms <= sim.end_ms]
    ids = {n: f"det-{n:05d}" for n in range(len(sim.alerts))}
    events: list[tuple[int, int, str, Any]] = []
    for n, a in enumerate(sim.alerts):
        kind, district = sim.where[a.device]
        base = {"id": ids[n], "device": a.device, "kind": kind, "district": district, "metric": a.metric,
                "rule": a.rule, "severity": a.severity, "score": min(a.peak, 1.0), "observed": None, "expected": None,
                "explanation": a.rule, "started_ms": a.start_ms}
        events.append((a.start_ms, 0, "alert", base | {"state": "active", "updated_ms": a.start_ms}))
        events.append((a.end_ms, 0, "alert", base | {"state": "cleared", "updated_ms": a.end_ms}))
        events.append((a.end_ms + 30 * MIN, 1, "resolve", ids[n]))
    events += _complaints(sim, noticed, list(settings.city.slugs), unrelated_count, rng)
    events.sort(key=lambda e: (e[0], e[1]))

    folder.mkdir(parents=True, exist_ok=True)
    db = ApiDb(folder / "api.sqlite3")
    alerts = AlertService(settings, db, subscribe=False)
    complaints = ComplaintStore(db, ContactVault(""), 10**9, 10**9)
    linker = Linker(alerts, complaints, settings.api_citizen_link_window_s, settings.api_citizen_cluster_count,
                    settings.api_citizen_cluster_window_s)
    truth: dict[str, int | None] = {}
    for n, (t, _, what, payload) in enumerate(events):
        if what == "alert":
            alerts.apply(payload)
        elif what == "resolve":
            alerts.store.resolve(payload, "operator", "fixed")
        else:
            fault, code, district = payload
            new = NewComplaint(service_code=code, district=district, description=f"laporan {n} {code}")
            complaint, _ = complaints.create(new, client=f"10.0.{n}", t_ms=t)
            linker.on_complaint(complaint.id)
            truth[complaint.id] = fault
    linked = {c.id: c.alert_id for c in complaints.find(limit=10**6)[0]}
    rules = {a.id: a.rule for a in alerts.store.find(limit=10**6)[0]}
    right_sets = [_right_incidents(sim, f, ids) for f in noticed]
    ours = [(cid, f) for cid, f in truth.items() if f is not None]
    wrong: Counter = Counter()
    right = right_of_found = found_complaints = 0
    for cid, f in ours:
        hit = linked[cid] in right_sets[f]
        right += hit
        if right_sets[f]:
            found_complaints += 1
            right_of_found += hit
        if not hit:
            wrong["fault missed by the detectors" if not right_sets[f] else
                  "not linked" if not linked[cid] else
                  "a citizen-reported alert" if rules[linked[cid]] == CITIZEN_RULE else "another incident"] += 1
    others = [cid for cid, f in truth.items() if f is None]
    false_by_rule = Counter(rules[linked[cid]] for cid in others
                            if linked[cid] and rules[linked[cid]] != CITIZEN_RULE)
    false_links = sum(false_by_rule.values())
    return Measured(len(noticed), sum(bool(s) for s in right_sets), len(sim.alerts), len(ours), right, right_of_found,
                    found_complaints, len(others), false_links, sum(r == CITIZEN_RULE for r in rules.values()), wrong,
                    false_by_rule)


def summary(m: Measured) -> str:
    return (f"{m.faults} citizen-visible faults ({m.found} found by the detectors, {m.incidents} detector incidents); "
            f"{m.fault_complaints} fault complaints linked to a right incident: {m.right}/{m.fault_complaints} = "
            f"{m.right_share:.1%} (of found faults' complaints {m.right_of_found}/{m.found_complaints}); "
            f"{m.unrelated} unrelated complaints linked to a sensor incident: {m.false_links} = {m.false_share:.1%}; "
            f"citizen-reported alerts: {m.citizen_alerts}; not right: {dict(m.wrong)}; "
            f"false links by rule: {dict(m.false_by_rule)}")
