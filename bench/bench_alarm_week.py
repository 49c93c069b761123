"""A simulated week on the alarm board: the fleet simulator's faults, the detectors as `city
evaluate` runs them, every alarm through the API's alert store and alarm policy (priority,
grouping, chattering) on a simulated clock, and a scripted operator; then the alarm KPIs.

    python bench/bench_alarm_week.py [--devices 200] [--days 7] [--ack-after-min 3]

The scripted operator acknowledges each alarm on the board `--ack-after-min` after it arrives
and resolves it `--resolve-after-min` after analytics clears it. Printed: the priority mix
against the detectors' severity mix (what the board ranked by before), alarms per operator-hour,
the worst 10 minutes, time in flood, chattering, and times to acknowledge and resolve. The
first `--warmup-h` hours (baselines learning) are simulated but not put on the board.
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "firmware-sim")]

from analytics.evaluate import Alert, evaluate_fleet  # noqa: E402
from api.alarms.kpis import kpis  # noqa: E402
from api.alarms.policy import AlarmPolicy  # noqa: E402
from api.alerts import store as store_module  # noqa: E402
from api.alerts.store import AlertStore  # noqa: E402
from api.db import ApiDb  # noqa: E402
from telemetry_shared.settings import Settings  # noqa: E402


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
    args = parser.parse_args()

    detected = _detect(args)
    start_ms = 1_767_200_400_000 + int(args.warmup_h * 3_600_000)
    end_ms = start_ms + int(args.days * 86_400_000)
    districts = _districts(args.devices, args.seed)

    settings = Settings(environment="test")
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(store_module, "now_ms", clock):
        db = ApiDb(Path(folder) / "api.sqlite3")
        store = AlertStore(db, AlarmPolicy(settings))
        severity = Counter()
        for t_ms, _, what, (n, a) in events(detected, start_ms, int(args.ack_after_min * 60_000),
                                            int(args.resolve_after_min * 60_000)):
            if t_ms >= end_ms:
                continue
            clock.ms = t_ms
            alert_id = f"inc-{n}"
            if what == "open":
                severity[a.severity] += 1
                store.apply(message(n, a, "active", t_ms, districts))
            elif what == "clear":
                store.apply(message(n, a, "cleared", t_ms, districts))
            else:
                current = store.get(alert_id)
                if what == "ack" and current.on_board and not current.acknowledged:
                    store.acknowledge(alert_id, "scripted operator")
                elif what == "resolve" and not current.resolved:
                    store.resolve(alert_id, "scripted operator", "cleared by itself, checked")
        k = kpis(db, start_ms, end_ms, end_ms, settings.api_alarm_operator_positions, settings.api_alarm_flood_count)
        db.close()
    _report(args, severity, k)


def _detect(args) -> list[Alert]:
    """The detectors' alarms over the simulated fleet (from the cache when it matches)."""
    key = {"devices": args.devices, "days": args.days, "warmup_h": args.warmup_h, "seed": args.seed}
    if args.cache and args.cache.exists():
        cached = json.loads(args.cache.read_text())
        if cached["key"] == key:
            print(f"{len(cached['alerts'])} alarms from {args.cache}")
            return [Alert(**a) for a in cached["alerts"]]
    hours = args.warmup_h + args.days * 24
    started = time.monotonic()
    print(f"simulating {args.devices} devices for {hours:g} h (the first {args.warmup_h:g} h learn) ...", flush=True)
    evaluation = evaluate_fleet(args.devices, hours, 60.0, args.seed, args.warmup_h)
    print(f"  {len(evaluation.alerts)} alarms from the detectors in {time.monotonic() - started:.0f} s")
    if args.cache:
        args.cache.write_text(json.dumps({"key": key, "alerts": [vars(a) for a in evaluation.alerts]}))
    return evaluation.alerts


def _districts(devices: int, seed: int) -> dict[str, tuple[str, str]]:
    """device -> (kind, district), as the simulator planned the fleet."""
    import fleetsim

    return {spec["id"]: (spec["kind"], spec["district"])
            for spec in fleetsim.plan_fleet(fleetsim.load_scenario(), devices, seed)}


def _report(args, severity: Counter, k) -> None:
    total = sum(severity.values()) or 1
    print(f"\n{args.devices} devices, {args.days:g} simulated days after warm-up, 1 operator position")
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
