"""Fault injection and its ground truth.

`plan_faults` decides, from the seed, which device gets which fault and when
(at most one fault per device, so a label is never ambiguous). `apply` bends a
device's true readings while a fault is active. `write_labels` writes the
ground truth as CSV: device,metric,fault,start_ms,end_ms (UTC ms, end
exclusive; the metric is empty for whole-device faults: silent, clock_skew,
malformed). Times are true (wall-clock) times, also for clock_skew.
"""

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.scenario import FAULT_NAMES

LABEL_HEADER = ("device", "metric", "fault", "start_ms", "end_ms")
WHOLE_DEVICE = ("silent", "clock_skew", "malformed")
# The metrics a fault shows up in (what a detector should flag).
FAULT_METRICS = {
    "leak": ("flow_lps", "pressure_bar"),
    "burst": ("flow_lps", "pressure_bar"),
    "outage": ("voltage_v", "power_kw"),
    "voltage_sag": ("voltage_v",),
    "voltage_swell": ("voltage_v",),
    "tampering": ("power_kw",),
    "hvac_failure": ("temperature_c",),
    "co2_buildup": ("co2_ppm",),
    "incident": ("speed_kmh", "occupancy_pct"),
    "congestion": ("speed_kmh", "occupancy_pct"),
}
SENSOR_FAULTS = ("stuck", "drift")  # one metric of any device


@dataclass
class Fault:
    device: str
    fault: str
    metrics: tuple[str, ...]
    start_ms: int
    end_ms: int
    params: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)  # values seen at the start (stuck, drift)

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    def progress(self, t_ms: int) -> float:
        return (t_ms - self.start_ms) / max(1, self.end_ms - self.start_ms)


def plan_faults(scenario: dict[str, Any], devices: list[tuple[dict[str, Any], tuple[str, ...]]], seed: int,
                start_ms: int, end_ms: int) -> list[Fault]:
    """Faults for devices [(spec, metrics)] within [start_ms, end_ms)."""
    if end_ms <= start_ms:
        return []
    rng = random.Random(f"{seed}:faults")
    window_ms = end_ms - start_ms
    free = {spec["id"]: (spec, metrics) for spec, metrics in devices}
    faults = []
    for name in FAULT_NAMES:  # kind-specific faults first, so generic ones cannot use up their devices
        spec = scenario.get("faults", {}).get(name)
        if not spec:
            continue
        of_kind = sorted(d for d, (s, m) in free.items() if s["kind"] in spec["kinds"] and _fits(name, m))
        eligible_total = sum(1 for s, m in devices if s["kind"] in spec["kinds"] and _fits(name, m))
        count = min(len(of_kind), max(spec.get("min", 0), round(spec["share"] * eligible_total)))
        for device_id in rng.sample(of_kind, count):
            _, metrics = free.pop(device_id)
            faults.append(_one_fault(rng, name, device_id, metrics, spec["minutes"], start_ms, window_ms))
    return sorted(faults, key=lambda f: (f.start_ms, f.device))


def _fits(name: str, metrics: tuple[str, ...]) -> bool:
    return all(m in metrics for m in FAULT_METRICS.get(name, ()))


def _one_fault(rng: random.Random, name: str, device_id: str, metrics: tuple[str, ...], minutes: list[float],
               start_ms: int, window_ms: int) -> Fault:
    duration_ms = int(min(rng.uniform(*minutes) * 60_000, window_ms * 0.6))
    lead_ms = int(window_ms * 0.05)  # a little normal behaviour first, for the detectors' baselines
    begin = start_ms + lead_ms + int(rng.random() * max(0, window_ms - lead_ms - duration_ms))
    if name in SENSOR_FAULTS:
        affected: tuple[str, ...] = (rng.choice(sorted(m for m in metrics if m != "energy_kwh")),)
    else:
        affected = FAULT_METRICS.get(name, ())
    params = {"strength": rng.random(), "sign": rng.choice((-1.0, 1.0)),
              "skew_ms": -float(rng.randint(600_000, 3_600_000) | 1)}  # odd ms: never lands on another reading
    return Fault(device_id, name, affected, begin, begin + max(duration_ms, 1), params)


def _lerp(lo: float, hi: float, u: float) -> float:
    return lo + (hi - lo) * u


def apply(fault: Fault, values: dict[str, float], t_ms: int) -> None:
    """Bend the readings of an active fault in place."""
    p = fault.progress(t_ms)
    u = fault.params["strength"]
    name = fault.fault
    if name == "leak":  # a slow rise, most visible in the minimum night flow, and a pressure drop
        ramp = min(1.0, p * 3)
        values["flow_lps"] += _lerp(2.0, 6.0, u) * ramp
        values["pressure_bar"] -= _lerp(0.3, 0.7, u) * ramp
    elif name == "burst":
        values["flow_lps"] = values["flow_lps"] * 2.5 + _lerp(20, 60, u)
        values["pressure_bar"] *= _lerp(0.25, 0.5, u)
    elif name == "outage":
        for metric in ("voltage_v", "current_a", "power_kw"):
            values[metric] = 0.0
    elif name == "voltage_sag":
        values["voltage_v"] *= _lerp(0.75, 0.88, u)
    elif name == "voltage_swell":
        values["voltage_v"] *= _lerp(1.10, 1.15, u)
    elif name == "tampering":  # the meter under-reports against its neighbours
        factor = _lerp(0.3, 0.55, u)
        values["power_kw"] *= factor
        values["current_a"] *= factor
    elif name == "hvac_failure":
        ramp = min(1.0, p * 4)
        values["temperature_c"] += (_lerp(4, 8, u)) * ramp
        values["humidity_pct"] = min(100.0, values["humidity_pct"] + 12 * ramp)
    elif name == "co2_buildup":
        values["co2_ppm"] += _lerp(900, 2200, u) * min(1.0, p * 2)
    elif name in ("incident", "congestion"):
        severe = name == "incident"
        values["speed_kmh"] *= _lerp(0.15, 0.35, u) if severe else _lerp(0.45, 0.65, u)
        values["occupancy_pct"] = min(100.0, values["occupancy_pct"] + (_lerp(35, 55, u) if severe else 22))
        values["vehicle_count"] = float(round(values["vehicle_count"] * (0.4 if severe else 0.85)))
    elif name == "stuck":
        metric = fault.metrics[0]
        values[metric] = fault.memory.setdefault(metric, values[metric])
    elif name == "drift":
        metric = fault.metrics[0]
        start = fault.memory.setdefault(metric, abs(values[metric]) or 1.0)
        values[metric] += fault.params["sign"] * _lerp(0.15, 0.35, u) * start * p


def label_rows(faults: list[Fault], until_ms: int | None = None) -> list[tuple[str, str, str, int, int]]:
    """One row per (fault, metric); faults are clipped to what ran before until_ms."""
    rows = []
    for f in faults:
        end = f.end_ms if until_ms is None else min(f.end_ms, until_ms)
        if end <= f.start_ms:
            continue  # never started
        for metric in f.metrics or ("",):
            rows.append((f.device, metric, f.fault, f.start_ms, end))
    return rows


def write_labels(path: Path | str, faults: list[Fault], until_ms: int | None = None) -> int:
    """Write the ground truth CSV (atomically); returns the number of rows."""
    rows = label_rows(faults, until_ms)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LABEL_HEADER)
        writer.writerows(rows)
    tmp.replace(path)
    return len(rows)
