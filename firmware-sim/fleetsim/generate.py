"""The simulated city without a broker: readings and labels in process, for the
analytics engineer's detectors and evaluation."""

from collections.abc import Iterator
from typing import Any

from fleetsim.device import SimDevice
from fleetsim.faults import Fault, plan_faults
from fleetsim.plan import plan_fleet
from fleetsim.scenario import ScenarioError, validate_scenario

Reading = tuple[str, str, str, int, dict[str, float]]  # device, kind, district, t_ms, {metric: value}


def build_devices(scenario: dict[str, Any], specs: list[dict[str, Any]], seed: int, start_ms: int,
                  end_ms: int) -> tuple[list[SimDevice], list[Fault]]:
    """SimDevices for specs, with faults planned in [start_ms, end_ms) and attached."""
    devices = [SimDevice(scenario, spec, seed) for spec in specs]
    faults = plan_faults(scenario, [(d.spec, d.metrics) for d in devices], seed, start_ms, end_ms)
    by_id = {d.id: d for d in devices}
    for fault in faults:
        by_id[fault.device].faults.append(fault)
    return devices, faults


def generate(scenario: dict[str, Any], devices: int, seed: int, start_ms: int, hours: float,
             interval_s: float) -> tuple[Iterator[Reading], list[Fault]]:
    """Readings every interval_s for `hours` from start_ms, and the faults injected.

    readings: an iterator of (device, kind, district, t_ms, {metric: value}),
    time by time (every device at t, then every device at t + interval).
    Silent and malformed spells yield nothing; clock_skew yields skewed t_ms.
    labels: the Fault list; `fleetsim.label_rows(labels)` gives CSV rows.
    """
    validate_scenario(scenario)
    if not 0 < hours <= 24 * 35:
        raise ScenarioError(f"hours must be 0..840, not {hours!r}")
    if not 1 <= interval_s <= 86400:
        raise ScenarioError(f"interval_s must be 1..86400, not {interval_s!r}")
    scenario = dict(scenario, interval_s=interval_s)
    end_ms = start_ms + int(hours * 3_600_000)
    sims, faults = build_devices(scenario, plan_fleet(scenario, devices, seed), seed, start_ms, end_ms)
    return _readings(sims, start_ms, end_ms, int(interval_s * 1000)), faults


def _readings(sims: list[SimDevice], start_ms: int, end_ms: int, step_ms: int) -> Iterator[Reading]:
    for t_ms in range(start_ms, end_ms, step_ms):
        for sim in sims:
            reading = sim.reading(t_ms)
            if reading is not None and reading[2] == "ok":
                yield sim.id, sim.kind, sim.district, reading[0], reading[1]
