"""What each simulated device would measure, from the scenario's daily curves in
local time (UTC+7): water demand with a minimum night flow, household and
commercial load, rush-hour traffic, tropical building climate and hospital
ward occupancy. One model per device, its parameters and noise drawn from
a random generator seeded by (seed, device id), so a run is reproducible."""

import math
import random
from functools import lru_cache
from typing import Any

from edge import contract
from fleetsim.plan import profile_of
from fleetsim.scenario import curve_at, local_hour

Values = dict[str, float]



@lru_cache(maxsize=8)
def _day_set(days: tuple[int, ...]) -> frozenset[int]:
    """The scenario's days off as a set, built once for every device of the scenario."""
    return frozenset(days)

class Model:
    """Base: a device's parameters, its random stream, and the local clock."""

    metrics: tuple[str, ...] = ()

    def __init__(self, scenario: dict[str, Any], spec: dict[str, Any], seed: int):
        self.scenario = scenario
        self.curves = scenario["curves"]
        self.profile = profile_of(scenario, spec["id"], spec["kind"])
        self.rng = random.Random(f"{seed}:model:{spec['id']}")
        self.interval_s = float(scenario["interval_s"])
        self.days_off = _day_set(tuple(scenario.get("days_off", ())))
        self.last_t_ms: int | None = None
        self.setup()

    def setup(self) -> None:
        pass

    def curve(self, name: str, t_ms: int) -> float:
        return curve_at(self.curves[name], local_hour(self.scenario, t_ms))

    def weekend(self, t_ms: int) -> bool:
        """Is t_ms on a local day off (a weekly rest day or a holiday of the city's calendar)?"""
        offset_ms = self.scenario.get("utc_offset_hours", 0) * 3_600_000
        day = (t_ms + offset_ms) // 86_400_000
        # 1970-01-01 was a Thursday: +3 makes Monday 0. A public holiday or the city's own day off
        # (the profile's calendar) is a day off like a weekend: offices empty, shops' load down.
        return (day + 3) % 7 in self.scenario.get("rest_weekdays", (5, 6)) or day in self.days_off

    def noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)

    def step_s(self, t_ms: int) -> float:
        """Seconds since the previous reading (the scenario interval for the first)."""
        dt = self.interval_s if self.last_t_ms is None else max(0.0, (t_ms - self.last_t_ms) / 1000)
        self.last_t_ms = t_ms
        return dt

    def values(self, t_ms: int) -> Values:
        raise NotImplementedError

    def settle(self, values: Values, dt_s: float) -> None:
        """After faults are applied: integrate what accumulates (energy)."""


class WaterModel(Model):
    def setup(self) -> None:
        r = self.rng
        self.peak_lps = r.uniform(8, 45)
        self.static_bar = r.uniform(3.6, 4.6)
        self.headloss_bar = r.uniform(0.8, 1.5)
        self.chlorine = r.uniform(0.4, 0.8)
        self.level_m = r.uniform(4, 9)
        self.turbidity = r.uniform(0.3, 1.5)
        self.metrics = (("flow_lps", "pressure_bar", "chlorine_mgl") if self.profile != "reservoir"
                        else ("flow_lps", "level_m", "turbidity_ntu"))

    def values(self, t_ms: int) -> Values:
        demand = self.curve("water_demand", t_ms)
        flow = self.peak_lps * demand * (1 + self.noise(0.03))
        if self.profile == "reservoir":
            # The tank drains through the day and refills at night: level trails demand by ~3 h.
            lagged = curve_at(self.curves["water_demand"], (local_hour(self.scenario, t_ms) - 3) % 24)
            return {"flow_lps": flow, "level_m": self.level_m + 2.0 * (0.55 - lagged) + self.noise(0.02),
                    "turbidity_ntu": max(0.05, self.turbidity + self.noise(0.08))}
        pressure = self.static_bar - self.headloss_bar * demand**2 + self.noise(0.03)
        return {"flow_lps": flow, "pressure_bar": pressure, "chlorine_mgl": max(0.0, self.chlorine + self.noise(0.02))}


class PowerModel(Model):
    metrics = ("voltage_v", "current_a", "power_kw", "energy_kwh", "power_factor", "frequency_hz")

    def setup(self) -> None:
        r = self.rng
        commercial = self.profile == "commercial"
        self.peak_kw = r.uniform(40, 220) if commercial else r.uniform(4, 14)
        self.pf = r.uniform(0.84, 0.94) if commercial else r.uniform(0.92, 0.98)
        self.drop_share = r.uniform(0.017, 0.043)  # of the nominal voltage, at full load
        self.energy_kwh = r.uniform(1_000, 90_000)
        self.curve_name = "commercial_load" if commercial else "household_load"

    def values(self, t_ms: int) -> Values:
        load = self.curve(self.curve_name, t_ms)
        if self.profile == "commercial" and self.weekend(t_ms):
            load *= 0.45
        power_kw = max(0.0, self.peak_kw * load * (1 + self.noise(0.04)))
        grid = self.scenario["grid"]
        nominal_v = grid["nominal_voltage_v"]  # from the city profile (fleetsim.scenario.with_city)
        voltage = nominal_v * (1 - self.drop_share * load + self.noise(0.0035))
        pf = min(1.0, self.pf + self.noise(0.005))
        return {"voltage_v": voltage, "current_a": power_kw * 1000 / (voltage * pf), "power_kw": power_kw,
                "power_factor": pf, "frequency_hz": grid["nominal_frequency_hz"] + self.noise(0.015)}

    def settle(self, values: Values, dt_s: float) -> None:
        if "power_kw" in values:
            self.energy_kwh += max(0.0, values["power_kw"]) * dt_s / 3600
            values["energy_kwh"] = self.energy_kwh


class BuildingModel(Model):
    def setup(self) -> None:
        r = self.rng
        self.capacity = r.randint(40, 400) if self.profile != "hospital" else r.randint(20, 80)
        self.beds = r.randint(16, 60)
        self.setpoint_c = r.uniform(23.0, 25.5)
        self.co2_per_person = r.uniform(300, 700)
        hospital = ("beds_free",) if self.profile == "hospital" else ()
        self.metrics = ("temperature_c", "humidity_pct", "co2_ppm", "occupancy") + hospital

    def values(self, t_ms: int) -> Values:
        outdoor = self.curve("outdoor_temp_c", t_ms)
        hour = local_hour(self.scenario, t_ms)
        if self.profile == "hospital":
            cooling, share = 1.0, 0.6 + 0.3 * self.curve("occupancy", t_ms)  # wards are never empty
        else:
            share = self.curve("occupancy", t_ms) * (0.1 if self.weekend(t_ms) else 1.0)
            cooling = 1.0 if 6.5 <= hour <= 18.5 and share > 0.05 else 0.0
        people = max(0, round(self.capacity * share + self.noise(2)))
        indoor = outdoor - (outdoor - self.setpoint_c) * cooling + self.noise(0.15)
        values = {"temperature_c": indoor, "humidity_pct": min(100.0, 58 + 18 * (1 - cooling) + self.noise(1.5)),
                  "co2_ppm": 420 + self.co2_per_person * people / self.capacity + self.noise(15),
                  "occupancy": float(people)}
        if self.profile == "hospital":
            occupied = self.beds * min(1.0, self.curve("ward_admissions", t_ms) + self.noise(0.03))
            values["beds_free"] = float(max(0, self.beds - round(occupied)))
        return values


class TrafficModel(Model):
    metrics = ("vehicle_count", "speed_kmh", "occupancy_pct")

    def setup(self) -> None:
        r = self.rng
        arterial = self.profile == "arterial"
        self.peak_per_hour = r.uniform(1200, 2200) if arterial else r.uniform(250, 700)
        self.free_kmh = r.uniform(50, 62) if arterial else r.uniform(30, 42)

    def values(self, t_ms: int) -> Values:
        flow = self.curve("traffic_flow", t_ms)
        expected = self.peak_per_hour * flow * self.interval_s / 3600
        count = max(0, round(expected + self.noise(math.sqrt(expected) + 0.3)))
        return {"vehicle_count": float(count),
                "speed_kmh": max(3.0, self.free_kmh * (1 - 0.55 * flow**3) + self.noise(1.5)),
                "occupancy_pct": min(100.0, max(0.0, 3 + 35 * flow**2 + self.noise(1.0)))}


MODELS = {"water": WaterModel, "power": PowerModel, "building": BuildingModel, "traffic": TrafficModel}


def make_model(scenario: dict[str, Any], spec: dict[str, Any], seed: int) -> Model:
    return MODELS[spec["kind"]](scenario, spec, seed)


def finish(kind: str, values: Values) -> Values:
    """Round and keep within the contract's physical bounds, so the ingest accepts them."""
    catalogue = contract.KINDS[kind]
    out = {}
    for metric, value in values.items():
        _, lo, hi = catalogue[metric]
        out[metric] = round(min(hi, max(lo, value)), 3)
    return out
