"""One simulated device: its true readings (the model) bent by its faults."""

from typing import Any

from fleetsim.faults import Fault, apply
from fleetsim.models import Model, finish, make_model


class SimDevice:
    def __init__(self, scenario: dict[str, Any], spec: dict[str, Any], seed: int):
        self.spec = spec
        self.id: str = spec["id"]
        self.kind: str = spec["kind"]
        self.district: str = spec["district"]
        self.model: Model = make_model(scenario, spec, seed)
        self.faults: list[Fault] = []

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.model.metrics

    def reading(self, t_ms: int) -> tuple[int, dict[str, float], str] | None:
        """(reported t_ms, values, how) at true time t_ms; None while the device is silent.

        how is "ok" or "malformed" (the payload must be sent broken).
        """
        dt_s = self.model.step_s(t_ms)
        values = self.model.values(t_ms)
        reported_ms, how = t_ms, "ok"
        for fault in self.faults:
            if not fault.active(t_ms):
                continue
            if fault.fault == "silent":
                self.model.settle(values, dt_s)  # the meter still counts energy while its radio is dead
                return None
            if fault.fault == "clock_skew":
                reported_ms = t_ms + int(fault.params["skew_ms"])
            elif fault.fault == "malformed":
                how = "malformed"
            else:
                apply(fault, values, t_ms)
        self.model.settle(values, dt_s)
        return reported_ms, finish(self.kind, values), how
