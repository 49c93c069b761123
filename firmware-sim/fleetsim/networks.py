"""The live city's water and electricity networks: a few district meter areas (DMAs) and feeders whose meters
are ordinary fleet devices, read from the water-network and feeder models (fleetsim/waternet.py,
fleetsim/feeders.py) instead of the per-device models.

The scenario's `networks` section sizes them (no city facts: districts, time zone and grid come from the
city profile through the scenario):

    "networks": {"dmas": 2, "customers_per_dma": 6, "feeders": 3, "customers_per_feeder": 10,
                 "history_days": 28, "interval_s": 60, "seed": 8, "tamper_rate": 0.1, "low_tap_rate": 0.34,
                 "sag_rate": 0.5}

With seed 8 these three feeders hold three tampered meters (all three found over 28 days), a sag that fails
one feeder's meters for a week and low-tap voltages out of the band in the last week (checked by
tests/firmware_sim/test_networks.py), so every panel of the boards has something to show.

`plan_networks(scenario, anchor_ms)` gives the meters (device specs, as plan_fleet's) and the topology
(one NetworkSpec-shaped dict per DMA and feeder) that `city up` registers; `network_devices(...)` gives
the simulated meters the fleet runner drives through the edge agent. The models start at `anchor_ms`, a
local midnight `history_days` before the city started: each meter first uploads that history as its data
logger would (one reading a model step, flagged hist), then reads live every `interval_s`.

What the readings hold (the models' ground truth is theirs: waternet.py and feeders.py): leakage with
bursts, night use, under-registering and illegal customers in each DMA; technical losses, tampered
meters, a low tap (voltages out of the EN 50160 band at peaks) and sags on the feeders. The models are
made for windows of `history_days + LIVE_DAYS` days; a city that runs longer starts the next window with
the same network (same seed), so the counters keep counting.
"""

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from fleetsim import feeders as fd
from fleetsim import waternet as wn

DAY_MS = 86_400_000
LIVE_DAYS = 7  # a model window covers the history and this many live days
DEFAULTS = {"dmas": 2, "customers_per_dma": 6, "feeders": 3, "customers_per_feeder": 10, "history_days": 28,
            "interval_s": 60, "seed": 8, "tamper_rate": 0.1, "low_tap_rate": 0.34, "sag_rate": 0.5}
LIMITS = {"dmas": (0, 50), "customers_per_dma": (1, 200), "feeders": (0, 50), "customers_per_feeder": (1, 200),
          "history_days": (1, 34), "interval_s": (1, 3600), "seed": (0, 2**31)}
RATES = ("tamper_rate", "low_tap_rate", "sag_rate")


class NetworkConfigError(ValueError):
    """The scenario's `networks` section cannot be used; the message names the key."""


def network_config(scenario: dict[str, Any]) -> dict[str, Any] | None:
    """The scenario's `networks` with defaults filled in, checked; None when the scenario has none."""
    given = scenario.get("networks")
    if given is None:
        return None
    if not isinstance(given, dict):
        raise NetworkConfigError("scenario key 'networks': must be an object")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise NetworkConfigError(f"scenario key 'networks.{unknown[0]}': unknown (known: {', '.join(DEFAULTS)})")
    config = DEFAULTS | given
    for key, (low, high) in LIMITS.items():
        if type(config[key]) is not int or not low <= config[key] <= high:
            raise NetworkConfigError(f"scenario key 'networks.{key}': must be a whole number {low}..{high}")
    for key in RATES:
        if type(config[key]) not in (int, float) or not 0 <= config[key] <= 1:
            raise NetworkConfigError(f"scenario key 'networks.{key}': must be a share 0..1")
    return config


def anchor_ms(scenario: dict[str, Any], now_ms: int, history_days: int) -> int:
    """The local midnight `history_days` before the local day of now_ms (the models' start)."""
    offset_ms = int(scenario.get("utc_offset_hours", 0) * 3_600_000)
    local_midnight = (now_ms + offset_ms) // DAY_MS * DAY_MS - offset_ms
    return local_midnight - history_days * DAY_MS


@dataclass(frozen=True)
class NetworkPlan:
    devices: list[dict[str, Any]]  # {id, kind, district, lat, lon}
    networks: list[dict[str, Any]]  # {id, utility, name, parent, meters: {role: [ids]}}
    config: dict[str, Any]


def _ids(config: dict[str, Any]) -> dict[str, list]:
    """Device and network ids by role, in the models' row order."""
    n_dma, n_fdr = config["dmas"], config["feeders"]
    per_dma, per_fdr = config["customers_per_dma"], config["customers_per_feeder"]
    return {
        "dma": [f"dma-{d + 1:02d}" for d in range(n_dma)],
        "inlet": [f"wtr-dma{d + 1:02d}-in" for d in range(n_dma)],
        "water_customer": [f"wtr-dma{d + 1:02d}-c{c + 1:03d}" for d in range(n_dma) for c in range(per_dma)],
        "feeder": [f"feeder-{f + 1:02d}" for f in range(n_fdr)],
        "transformer": [f"pwr-fdr{f + 1:02d}-tx" for f in range(n_fdr)],
        "power_customer": [f"pwr-fdr{f + 1:02d}-c{c + 1:03d}" for f in range(n_fdr) for c in range(per_fdr)],
    }


def plan_networks(scenario: dict[str, Any]) -> NetworkPlan | None:
    """The networks' meters and topology for a scenario (with the city's districts); None without `networks`.

    DMA and feeder i lie in district i (round robin over the profile's districts), all their meters there."""
    config = network_config(scenario)
    if config is None:
        return None
    ids, districts = _ids(config), scenario["districts"]
    devices: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    for utility, per_key, head, customer_key in (("water", "customers_per_dma", "inlet", "water_customer"),
                                                ("power", "customers_per_feeder", "transformer", "power_customer")):
        per = config[per_key]
        net_key = "dma" if utility == "water" else "feeder"
        for i, network_id in enumerate(ids[net_key]):
            district = districts[i % len(districts)]
            customers = ids[customer_key][i * per:(i + 1) * per]
            for device in (ids[head][i], *customers):
                devices.append({"id": device, "kind": utility, "district": district["slug"], "lat": district["lat"],
                                "lon": district["lon"]})
            networks.append({"id": network_id, "utility": utility, "name": "", "parent": None,
                             "meters": {head: [ids[head][i]], "customer": customers}})
    return NetworkPlan(devices, networks, config)


class NetworkModels:
    """The water network's and the feeders' models for one city, made a window at a time (cached)."""

    def __init__(self, scenario: dict[str, Any], config: dict[str, Any], start_ms: int):
        self.scenario = scenario
        self.config = config
        self.start_ms = start_ms
        self.window_days = config["history_days"] + LIVE_DAYS
        self.offset_h = float(scenario.get("utc_offset_hours", 0))
        self._windows: dict[int, tuple[wn.Chunk | None, fd.FeederCity | None]] = {}

    def window(self, t_ms: int) -> tuple[int, int]:
        """(window number, ms since the window's start) of a time."""
        since = max(0, t_ms - self.start_ms)
        return since // (self.window_days * DAY_MS), since % (self.window_days * DAY_MS)

    def models(self, k: int) -> tuple[wn.Chunk | None, fd.FeederCity | None]:
        if k not in self._windows:
            if len(self._windows) > 1:  # only the current window and the one before are read
                self._windows.pop(min(self._windows))
            self._windows[k] = (self._water(k), self._feeders(k))
        return self._windows[k]

    def _water(self, k: int) -> wn.Chunk | None:
        c = self.config
        if not c["dmas"]:
            return None
        start = self.start_ms + k * self.window_days * DAY_MS
        net = wn.plan(c["dmas"], c["dmas"] * c["customers_per_dma"], self.window_days, seed=c["seed"],
                      start_ms=start, utc_offset_h=self.offset_h, sub_dma_share=0.0)
        return wn.chunk(net, 0, self.window_days * net.samples_per_day)

    def _feeders(self, k: int) -> fd.FeederCity | None:
        c = self.config
        if not c["feeders"]:
            return None
        grid, curves = self.scenario["grid"], self.scenario["curves"]
        n = c["customers_per_feeder"]
        return fd.simulate_feeders(
            feeders=c["feeders"], customers_per_feeder=(n, n), days=self.window_days,
            start_ms=self.start_ms + k * self.window_days * DAY_MS, nominal_v=grid["nominal_voltage_v"],
            nominal_hz=grid["nominal_frequency_hz"], utc_offset_h=self.offset_h,
            household_curve=curves["household_load"], commercial_curve=curves["commercial_load"], seed=c["seed"],
            tamper_rate=c["tamper_rate"], low_tap_rate=c["low_tap_rate"], sag_rate=c["sag_rate"])

    @cached_property
    def energy_per_window_kwh(self) -> np.ndarray:
        """What each power meter records in a window (the same every window: the same seed), transformers first."""
        city = self.models(0)[1]
        kw = np.vstack([city.transformer_kw, city.customer_kw])
        return kw.sum(axis=1) * fd.SLOT_S / 3600


class NetworkMeter:
    """One meter of a DMA or feeder: the fleet runner's device (reading(t_ms) as fleetsim.device.SimDevice)."""

    def __init__(self, spec: dict[str, Any], models: NetworkModels, role: str, row: int):
        self.spec = spec
        self.id: str = spec["id"]
        self.kind: str = spec["kind"]
        self.district: str = spec["district"]
        self.models = models
        self.role = role  # inlet / customer (water), transformer / customer (power)
        self.row = row  # the meter's row in the model's arrays
        self.faults: list = []  # the models plant their own (bursts, tampering): no device faults
        self.interval_ms = models.config["interval_s"] * 1000
        self.history_step_ms = wn.DAY_MS // 96 if self.kind == "water" else fd.SLOT_S * 1000
        self.history_start_ms = models.start_ms
        self.counter_base = 100.0 + 37.0 * row  # a meter installed with some energy on its register

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("flow_lps",) if self.kind == "water" else ("voltage_v", "frequency_hz", "power_kw", "energy_kwh")

    def reading(self, t_ms: int) -> tuple[int, dict[str, float], str] | None:
        k, since_ms = self.models.window(t_ms)
        water, power = self.models.models(k)
        if self.kind == "water":
            slot = int(since_ms // (wn.DAY_MS // 96))
            lps = water.inlet_lps if self.role == "inlet" else water.customer_lps
            return t_ms, {"flow_lps": round(float(lps[self.row, slot]), 5)}, "ok"
        slot_ms = fd.SLOT_S * 1000
        slot = int(since_ms // slot_ms)
        head = self.role == "transformer"
        kw = power.transformer_kw if head else power.customer_kw
        volts = power.transformer_voltage if head else power.voltage
        row = self.row if head else self.row + len(power.transformer_ids)
        before = float(kw[self.row, :slot].sum()) * fd.SLOT_S / 3600
        within = float(kw[self.row, slot]) * (since_ms - slot * slot_ms) / 3_600_000
        energy = self.counter_base + k * float(self.models.energy_per_window_kwh[row]) + before + within
        return t_ms, {"voltage_v": round(float(volts[self.row, slot]), 2),
                      "frequency_hz": round(float(power.frequency[slot]), 3),
                      "power_kw": round(float(kw[self.row, slot]), 3), "energy_kwh": round(energy, 3)}, "ok"


def network_devices(scenario: dict[str, Any], specs: list[dict[str, Any]], start_ms: int) -> list[NetworkMeter]:
    """The simulated meters among `specs` (the rest are ordinary devices), on models starting at start_ms."""
    plan = plan_networks(scenario)
    if plan is None:
        return []
    ids = _ids(plan.config)
    models = NetworkModels(scenario, plan.config, start_ms)
    rows = {}
    for role, key in (("inlet", "inlet"), ("customer", "water_customer"), ("transformer", "transformer"),
                      ("customer", "power_customer")):
        rows |= {device: (role, i) for i, device in enumerate(ids[key])}
    return [NetworkMeter(spec, models, *rows[spec["id"]]) for spec in specs if spec["id"] in rows]

