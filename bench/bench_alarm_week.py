"""A simulated week on the alarm board: the fleet simulator's faults, the detectors as `city
evaluate` runs them, every alarm through the API's alert store and alarm policy (priority,
grouping, chattering) on a simulated clock, and a scripted operator; then the alarm KPIs.

    python bench/bench_alarm_week.py [--devices 200] [--days 7] [--ack-after-min 3] [--planned 4]

The scripted operator acknowledges each alarm on the board `--ack-after-min` after it arrives
and resolves it `--resolve-after-min` after analytics clears it. Printed: the priority mix
against the detectors' severity mix (what the board ranked by before), alarms per operator-hour,
the worst 10 minutes, time in flood, chattering, and times to acknowledge and resolve. The
first `--warmup-h` hours (baselines learning) are simulated but not put on the board.

Two runs of the same week: without learning, and with it (dismissals propose by themselves, an
engineer approves every open proposal after `--learn-after-days`, approved detector changes hold
alarms from then on); then false alarms, recall and precision of the rest of the week for both.
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "firmware-sim")]

from analytics.config import DEFAULT_PARAMS  # noqa: E402
from analytics.evaluate import DETECT_BLOCK_ROWS, Alert, Grid, build_grid, detect, fleet_capacity, match  # noqa: E402
from api.alarms.kpis import kpis  # noqa: E402
from api.alarms.policy import AlarmPolicy  # noqa: E402
from api.alarms.tuning import TuningStore  # noqa: E402
from api.alerts import store as store_module  # noqa: E402
from api.alerts.store import AlertStore  # noqa: E402
from api.db import ApiDb  # noqa: E402
from telemetry_shared.detector_tuning import DetectorTuningStore, TuningCache  # noqa: E402
from telemetry_shared.settings import Settings  # noqa: E402

UTC_OFFSET_H = 7  # evaluate_fleet's default, the simulated city's
SIM_START_MS = 1_767_200_400_000  # evaluate_fleet's: 2026-01-01 00:00 in the city
HOUR_MS = 3_600_000
# Planned work the simulator does not have: from the first day after warm-up, a feeder maintenance programme
# switches the load of `--planned` power meters to another feeder every day from 10:00 to 10:40 city time
# (current and power drop to 30 %). Unlabelled (no fault): the scripted operator resolves its alarms as
# planned work, as the work orders say.
PLANNED_FROM_H, PLANNED_MINUTES, PLANNED_LOAD = 10, 40, 0.3


class Clock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


def events(alerts, warmup_end_ms: int, ack_ms: int, resolve_ms: int) -> list[tuple[int, int, str, object]]:
    """(time, order, what, alert) for every open, ack, clear and resolve, in time order."""
    out = []
    for n, a in enumerate(alerts):
        if a.start_ms < warmup_end_ms:
            continue
        out += [(a.start_ms, 0, "open", (n, a)), (a.start_ms + ack_ms, 1, "ack", (n, a)),
                (a.end_ms, 2, "clear", (n, a)), (a.end_ms + resolve_ms, 3, "resolve", (n, a))]
    return sorted(out, key=lambda e: (e[0], e[1], e[2]))


def message(n: int, a, state: str, t_ms: int, fleet: dict[str, tuple[str, str]]) -> dict:
    kind, district = fleet[a.device]
    return {"id": f"inc-{n}", "device": a.device, "kind": kind, "district": district,
            "metric": a.metric, "rule": a.rule, "state": state, "severity": a.severity, "score": round(a.peak, 4),
            "observed": None, "expected": None, "started_ms": a.start_ms, "updated_ms": t_ms, "explanation": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--warmup-h", type=float, default=120.0)
    parser.add_argument("--ack-after-min", type=float, default=3.0)
    parser.add_argument("--resolve-after-min", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, help="keep the detectors' alarms in this JSON file and reuse them "
                        "(the simulation takes minutes; the alarm handling seconds)")
    parser.add_argument("--grid-cache", type=Path,
                        help="keep the simulated readings (the arrival grid, float64, and the labels) in this .npz and "
                             "reuse them: a change to the detectors is measured on the same week without simulating "
                             "it again (--cache keeps the alarms, which such a change invalidates)")
    parser.add_argument("--detect-block-rows", type=int, default=DETECT_BLOCK_ROWS,
                        help="series the detectors score at once (analytics.evaluate.detect; 0: all at once): bounds "
                             "detection's memory, the alarms are the same for any value")
    parser.add_argument("--simulate-only", action="store_true",
                        help="stop once the simulated readings are in --grid-cache (no detection, no board): the "
                             "long simulation can run in the background while the detectors change")
    parser.add_argument("--planned", type=int, default=0,
                        help="power meters under a daily planned-work programme (see PLANNED_FROM_H); 0: none")
    parser.add_argument("--learn-after-days", type=float, default=3.0,
                        help="the scripted operator dismisses false alarms (no labelled fault on that device at that "
                             "time) as `false_alarm`; after this many days an engineer approves every proposal")
    args = parser.parse_args()
    if args.simulate_only and not args.grid_cache:
        parser.error("--simulate-only needs --grid-cache")

    detected, labels = _detect(args)
    if args.simulate_only:
        return
    start_ms = SIM_START_MS + int(args.warmup_h * 3_600_000)
    end_ms = start_ms + int(args.days * 86_400_000)
    learn_ms = start_ms + int(args.learn_after_days * 86_400_000)
    fleet = _districts(args.devices, args.seed)
    planned = _planned(fleet, args.planned)
    runs = {learn: week(args, detected, labels, fleet, start_ms, end_ms, learn_ms, learn, planned)
            for learn in (False, True)}
    for learn in (False, True):
        _report(args, *runs[learn][:2], "with learning" if learn else "without learning")
    _report_learning(args, runs)


def real(a, labels: dict[str, list[tuple[int, int]]], grace_ms: int = 3_600_000) -> bool:
    """A labelled fault on the alarm's device overlaps it (as analytics.evaluate.match counts a detection)."""
    return any(a.start_ms <= end + grace_ms and a.end_ms >= start for start, end in labels.get(a.device, ()))


def _planned(fleet: dict[str, tuple[str, str]], count: int) -> set[str]:
    """The power meters under the planned-work programme: every n-th of them, so they spread over districts."""
    meters = sorted(device for device, (kind, _) in fleet.items() if kind == "power")
    return set(meters[::max(1, len(meters) // count)][:count]) if count else set()


def in_planned_slot(t_ms: int, slack_min: int = 20) -> bool:
    """Within the daily planned-work slot, city time (an alarm starts a few minutes into it)."""
    minute = ((t_ms + UTC_OFFSET_H * HOUR_MS) % 86_400_000) // 60_000 - PLANNED_FROM_H * 60
    return 0 <= minute < PLANNED_MINUTES + slack_min


def week(args, detected, labels, fleet, start_ms: int, end_ms: int, learn_ms: int, learn: bool,
         planned: set[str] = frozenset()):
    """One simulated week on the board; returns (severity mix, KPIs, learning figures).

    Every dismissal (resolved as a false alarm) may propose a tuning by itself (TuningStore.learn); with
    `learn`, an engineer approves every open proposal at learn_ms, and from then on an alarm that the
    approved detector changes hold (telemetry_shared.detector_tuning, as the engine asks it where a score
    would open an alert: here with the alarm's peak score and start) never reaches the board."""
    settings = Settings(environment="test")
    clock = Clock()
    by_device: dict[str, list[tuple[int, int]]] = {}
    for device, _metric, _fault, start, end in labels:
        by_device.setdefault(device, []).append((start, end))
    learnt = False
    held: set[int] = set()
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(store_module, "now_ms", clock):
        db = ApiDb(Path(folder) / "api.sqlite3")
        store = AlertStore(db, AlarmPolicy(settings))
        detector = DetectorTuningStore(Path(folder) / "registry.sqlite3")
        tuning = TuningStore(db, detector, "", UTC_OFFSET_H)
        engine_tuning = TuningCache(detector, check_s=0)
        severity = Counter()
        for t_ms, _, what, (n, a) in events(detected, start_ms, int(args.ack_after_min * 60_000),
                                            int(args.resolve_after_min * 60_000)):
            if t_ms >= end_ms or n in held:
                continue
            clock.ms = t_ms
            if learn and not learnt and t_ms >= learn_ms:  # the engineer's review after the first days
                for proposal in tuning.list("proposed"):
                    tuning.decide(proposal.id, "scripted engineer", "approve", "", learn_ms)
                learnt = True
            alert_id = f"inc-{n}"
            if what == "open":
                if engine_tuning.holds(a.device, a.metric, a.rule, a.peak, None, a.start_ms, "", UTC_OFFSET_H):
                    held.add(n)
                    continue
                severity[a.severity] += 1
                store.apply(message(n, a, "active", t_ms, fleet))
            elif what == "clear":
                store.apply(message(n, a, "cleared", t_ms, fleet))
            else:
                current = store.get(alert_id)
                if what == "ack" and current.on_board and not current.acknowledged:
                    store.acknowledge(alert_id, "scripted operator")
                elif what == "resolve" and not current.resolved:
                    # on the board, or listed under its group's root card: the operator says what it was
                    seen = current.on_board or current.group_id
                    cause = _cause(a, by_device, planned, start_ms) if seen else ""
                    tuning.learn(store.resolve(alert_id, "scripted operator", "checked", cause), t_ms)
        k = kpis(db, start_ms, end_ms, end_ms, settings.api_alarm_operator_positions, settings.api_alarm_flood_count)
        later = _after(store, detected, by_device, labels, learn_ms, end_ms, held)
        later["day_types"] = _false_by_day_type(store, detected, by_device, start_ms, end_ms, held)
        later |= _recall(detected, labels, fleet, learn_ms, end_ms, held)
        later["approved"] = tuning.list("approved")
        db.close()
        detector.close()
    return severity, k, later


def _cause(a, by_device, planned: set[str], start_ms: int) -> str:
    """What the scripted operator finds: the work orders first, then whether a labelled fault was there."""
    if a.device in planned and a.start_ms >= start_ms and in_planned_slot(a.start_ms):
        return "planned_work"
    return "fault" if real(a, by_device) else "false_alarm"


def _recall(detected, labels, fleet, learn_ms: int, end_ms: int, held: set[int]) -> dict:
    """`city evaluate`'s figures (analytics.evaluate.match, row 'all') for the faults and alarms after learn_ms,
    the held alarms left out."""
    import fleetsim

    kinds = {name: set(spec["kinds"]) for name, spec in fleetsim.load_scenario()["faults"].items()}
    kept = [a for n, a in enumerate(detected) if n not in held and a.start_ms < end_ms]
    rows = match(kept, [tuple(label) for label in labels if label[3] < end_ms], kinds,
                 {device: kind for device, (kind, _) in fleet.items()}, 60_000, count_from_ms=learn_ms)
    row = next(r for r in rows if r.fault == "all")
    return {"recall": row.recall, "precision": row.precision, "eval_false": row.false_alarms,
            "labelled": row.labelled, "detected": row.detected}


def _after(store, detected, by_device, labels, learn_ms: int, end_ms: int, held: set[int]) -> dict:
    """On the board after learn_ms: false alarms, true ones, and the labelled faults that reached it."""
    on_board = {}
    for n, a in enumerate(detected):
        if learn_ms <= a.start_ms < end_ms:
            if n in held:  # the detectors' tuning kept it from opening
                on_board[n] = False
                continue
            stored = store.get(f"inc-{n}")
            on_board[n] = stored.priority != "advisory" and not stored.suppressed
    false = sum(1 for n, shown in on_board.items() if shown and not real(detected[n], by_device))
    true = sum(1 for n, shown in on_board.items() if shown and real(detected[n], by_device))
    faults = [(device, start, end) for device, _m, _f, start, end in labels if learn_ms <= start < end_ms]
    reached = sum(1 for device, start, end in faults if any(
        on_board.get(n) and a.device == device and a.start_ms <= end + 3_600_000 and a.end_ms >= start
        for n, a in enumerate(detected) if n in on_board))
    return {"false": false, "true": true, "faults": len(faults), "reached": reached}


def day_type(t_ms: int) -> str:
    """'weekend' or 'working' for the city's local day of t_ms (the rest days of the detectors' defaults; the
    bench gives the detectors no holiday calendar, so neither does this)."""
    local_day = (t_ms + UTC_OFFSET_H * HOUR_MS) // 86_400_000
    return "weekend" if (local_day + 3) % 7 in DEFAULT_PARAMS.rest_weekdays else "working"


def _false_by_day_type(store, detected, by_device, start_ms: int, end_ms: int, held: set[int]) -> dict:
    """False alarms that reached the board over the whole week, by the day type of their start, with the number
    of such days in the week: {day type: (false alarms, days)}."""
    false = Counter()
    for n, a in enumerate(detected):
        if start_ms <= a.start_ms < end_ms and n not in held and not real(a, by_device):
            stored = store.get(f"inc-{n}")
            if stored is not None and stored.priority != "advisory" and not stored.suppressed:
                false[day_type(a.start_ms)] += 1
    days = Counter(day_type(t) for t in range(start_ms + 43_200_000, end_ms, 86_400_000))
    return {kind: (false[kind], days[kind]) for kind in ("working", "weekend")}


def _detect(args) -> tuple[list[Alert], list]:
    """The detectors' alarms over the simulated fleet and its labelled faults (from the cache when it matches):
    evaluate_fleet's steps, with the planned work laid on the readings before the grid."""
    import fleetsim

    key = {"devices": args.devices, "days": args.days, "warmup_h": args.warmup_h, "seed": args.seed,
           **({"planned": args.planned} if args.planned else {})}
    if args.cache and args.cache.exists():
        cached = json.loads(args.cache.read_text())
        if cached["key"] == key and "labels" in cached:
            print(f"{len(cached['alerts'])} alarms from {args.cache}")
            return [Alert(**a) for a in cached["alerts"]], cached["labels"]
    hours = args.warmup_h + args.days * 24
    started = time.monotonic()
    grid_and_labels = _load_grid(args.grid_cache, key) if args.grid_cache else None
    if grid_and_labels is None:
        print(f"simulating {args.devices} devices for {hours:g} h (the first {args.warmup_h:g} h learn) ...",
              flush=True)
        scenario = fleetsim.load_scenario()
        readings, faults = fleetsim.generate(scenario, args.devices, args.seed, SIM_START_MS, hours, 60.0)
        planned = _planned(_districts(args.devices, args.seed), args.planned)
        work_from = SIM_START_MS + int(args.warmup_h * HOUR_MS)
        grid = build_grid(_planned_work(readings, planned, work_from), SIM_START_MS, 60_000, int(hours * 60),
                          fleet_capacity(scenario, args.devices, args.seed))  # each reading written as it comes
        labels = [list(label) for label in fleetsim.label_rows(faults)]
        print(f"  simulated in {time.monotonic() - started:.0f} s", flush=True)
        if args.grid_cache:
            _save_grid(args.grid_cache, key, grid, labels)
    else:
        grid, labels = grid_and_labels
        print(f"the simulated readings from {args.grid_cache} ({time.monotonic() - started:.0f} s)", flush=True)
    if args.simulate_only:
        return [], labels
    detecting = time.monotonic()
    alerts = detect(grid, replace(DEFAULT_PARAMS, utc_offset_h=UTC_OFFSET_H), block_rows=args.detect_block_rows)
    print(f"  {len(alerts)} alarms from the detectors in {time.monotonic() - detecting:.0f} s "
          f"({time.monotonic() - started:.0f} s in all)")
    if args.cache:
        args.cache.write_text(json.dumps({"key": key, "alerts": [vars(a) for a in alerts], "labels": labels}))
    return alerts, labels


def _save_grid(path: Path, key: dict, grid: Grid, labels: list) -> None:
    """The arrival grid and the labels as one .npz (float64 as simulated: the detectors see the same readings)."""
    arrays = {"meta": np.frombuffer(json.dumps({"key": key, "devices": grid.devices, "kinds": grid.kinds,
                                                "districts": grid.districts, "start_ms": grid.start_ms,
                                                "step_ms": grid.step_ms, "metrics": sorted(grid.metrics),
                                                "labels": labels}).encode(), dtype=np.uint8),
              "present": grid.present, "lag_ms": grid.lag_ms}
    for i, metric in enumerate(sorted(grid.metrics)):
        arrays[f"rows{i}"], arrays[f"values{i}"] = grid.metrics[metric]
    with open(path, "wb") as out:
        np.savez(out, **arrays)


def _load_grid(path: Path, key: dict) -> tuple[Grid, list] | None:
    """What _save_grid kept, or None when there is no such file or it was kept for another week."""
    if not path.exists():
        return None
    with np.load(path) as archive:
        meta = json.loads(archive["meta"].tobytes())
        if meta["key"] != key:
            print(f"{path} holds another week ({meta['key']}): simulating again", flush=True)
            return None
        metrics = {m: (archive[f"rows{i}"], archive[f"values{i}"]) for i, m in enumerate(meta["metrics"])}
        grid = Grid(meta["devices"], meta["kinds"], meta["start_ms"], meta["step_ms"], archive["present"],
                    archive["lag_ms"], metrics, meta["districts"])
    return grid, meta["labels"]


def _planned_work(readings, planned: set[str], work_from: int):
    """The readings with the planned work's load transfer laid on (current and power to PLANNED_LOAD)."""
    for device, kind, district, t_ms, values in readings:
        if device in planned and t_ms >= work_from and in_planned_slot(t_ms, slack_min=0):
            values = {m: v * PLANNED_LOAD if m in ("current_a", "power_kw") and v is not None else v
                      for m, v in values.items()}
        yield device, kind, district, t_ms, values


def _districts(devices: int, seed: int) -> dict[str, tuple[str, str]]:
    """device -> (kind, district), as the simulator planned the fleet."""
    import fleetsim

    return {spec["id"]: (spec["kind"], spec["district"])
            for spec in fleetsim.plan_fleet(fleetsim.load_scenario(), devices, seed)}


def _report_learning(args, runs: dict) -> None:
    before, after = runs[False][2], runs[True][2]
    approved = after["approved"]
    print(f"\nlearning from dismissals: false alarms of days 1-{args.learn_after_days:g} dismissed, "
          f"{len(approved)} proposals approved ({', '.join(sorted({t.change for t in approved})) or 'none'}), "
          f"then the rest of the week:")
    print(f"{'':20}{'false on board':>15}{'true on board':>14}{'faults reaching it':>19}"
          f"{'evaluate: false':>16}{'recall':>8}{'precision':>10}")
    for name, f in (("without learning", before), ("with learning", after)):
        print(f"{name:20}{f['false']:15d}{f['true']:14d}{f['reached']:>12d} of {f['faults']:<3d}"
              f"{f['eval_false']:16d}{f['recall']:8.3f}{f['precision']:10.3f}")
    for name, f in (("without learning", before), ("with learning", after)):
        print(f"false alarms on the board over the week, {name}: " + ", ".join(
            f"{kind} {count} in {days} days ({count / max(days, 1):.2f} a day)"
            for kind, (count, days) in f["day_types"].items()))
    for t in approved:
        print(f"  approved: {t.device} {t.metric or '-'} {t.rule}: {t.change} {t.params} "
              f"(held {t.effect.held} of {t.effect.alarms}: {t.effect.false_alarms} false, "
              f"{t.effect.real_faults} real)")


def _report(args, severity: Counter, k, run: str) -> None:
    total = sum(severity.values()) or 1
    print(f"\n{args.devices} devices, {args.days:g} simulated days after warm-up, {args.planned} meters under planned "
          f"work, 1 operator position, {run}")
    print(f"{'':28}{'high':>8}{'medium':>8}{'low':>8}")
    print(f"{'detector severity (before)':28}" + "".join(
        f"{100 * severity[s] / total:7.1f}%" for s in ("critical", "warning", "info")))
    print(f"{'priority (now)':28}" + "".join(f"{k.priority_percent[p]:7.1f}%" for p in ("high", "medium", "low")))
    print(f"{'target':28}{5.0:7.1f}%{15.0:7.1f}%{80.0:7.1f}%")
    print(f"\nraised {k.raised}: {k.advisories} advisories (not alarms), {k.annunciated} alarms on the board "
          f"(the rest grouped, chattering or suppressed)")
    print(f"alarms per operator-hour  {k.per_operator_hour:8.2f}   (EEMUA 191: <= 6 manageable)")
    print(f"per 10 min: mean {k.per_10min_mean:.2f}, worst {k.per_10min_max}")
    print(f"time in flood             {k.flood_percent:7.2f} %  ({k.periods_in_flood} of {k.periods} 10-min periods)")
    print(f"chattering sources        {k.chattering_sources:8d}")
    print(f"time to ack   median {k.time_to_ack.median_s} s, p90 {k.time_to_ack.p90_s} s")
    print(f"time to resolve median {k.time_to_resolve.median_s} s, p90 {k.time_to_resolve.p90_s} s")
    print("top sources: " + ", ".join(f"{s.device}/{s.rule} x{s.raises}" for s in k.top_sources[:5]))


if __name__ == "__main__":
    main()
