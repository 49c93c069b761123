"""Electricity feeders with ground truth: a transformer meter and its customers' meters, every 10 minutes.

Vectorised (numpy) over feeders, meters and time, so a city of feeders for weeks is made in seconds:
- load: each customer's true kW follows the scenario's household (or commercial) curve in local time,
  scaled by its own size, a day-to-day factor and noise; a few customers change their use for good
  reasons (a house left empty: use x0.3-0.6 from a day on), which is NOT tampering;
- technical losses (ground truth): I^2R-like, a * P^2 with P the feeder's load, plus a constant
  no-load (iron) loss; a is set per feeder so the variable loss is 2.5-8 % of its energy;
- tampering (ground truth): a customer meter records x0.3-0.6 of the true energy from a known day;
- meter accuracy: each customer meter's gain 1 + N(0, 0.3 %) (class 1 meters read well inside +-1 %),
  the transformer's 1 + N(0, 0.05 %) (class 0.2S metering): a transformer meter 0.2 % off moves a
  5 % loss by 4 %, so the balance is only as good as that meter;
- voltage: the transformer's tap sets the feeder's sending voltage, the drop grows with the load and
  the meter's position along the feeder; planted excursions: feeders with a low tap (the far end
  falls under -10 % at peaks) and short sags under -15 %, with the week's expected verdicts;
- frequency: one system frequency (the grid is synchronous), planted under-frequency events.

`simulate_feeders(...)` returns a FeederCity; `.lines(district_of)` renders it as the line protocol
that ingest stores (measurement `power`, tags device and district), `.topology()` the feeders.
"""

from dataclasses import dataclass, field

import numpy as np

SLOT_S = 600
SLOTS_PER_DAY = 86_400 // SLOT_S
DAY_MS = 86_400_000


@dataclass
class FeederCity:
    start_ms: int
    days: int
    feeder_ids: list[str]
    transformer_ids: list[str]
    customer_ids: list[str]
    feeder_of: np.ndarray  # (customers,) feeder index
    transformer_kwh_day: np.ndarray  # (feeders, days) as metered
    customer_kwh_day: np.ndarray  # (customers, days) as metered (tampered meters under-record)
    technical_loss_kwh_day: np.ndarray  # (feeders, days) ground truth
    unrecorded_kwh_day: np.ndarray  # (feeders, days) ground truth: energy used but not recorded
    customer_kw: np.ndarray  # (customers, slots) as metered, 10-minute means
    transformer_kw: np.ndarray  # (feeders, slots) as metered
    voltage: np.ndarray  # (customers, slots) 10-minute mean voltage at each customer meter
    transformer_voltage: np.ndarray  # (feeders, slots)
    frequency: np.ndarray  # (slots,) the system's frequency, one reading per slot
    tampered: dict[int, tuple[int, float]] = field(default_factory=dict)  # customer -> (first day, factor)
    legit_drops: dict[int, int] = field(default_factory=dict)  # customer -> first day of lower use
    low_tap_feeders: list[int] = field(default_factory=list)
    sags: list[tuple[int, int, int]] = field(default_factory=list)  # (feeder, first slot, slots)
    frequency_events: list[tuple[int, int, float]] = field(default_factory=list)  # (first slot, slots, hz)

    @property
    def loss_truth_kwh_day(self) -> np.ndarray:
        """What the balance should find: technical losses plus unrecorded energy."""
        return self.technical_loss_kwh_day + self.unrecorded_kwh_day

    def topology(self) -> dict:
        """{"feeders": [{"id", "transformer", "customers": [...]}]}, the shape `city power-quality --topology` reads."""
        return {"feeders": [
            {"id": feeder, "transformer": self.transformer_ids[f],
             "customers": [self.customer_ids[c] for c in np.flatnonzero(self.feeder_of == f)]}
            for f, feeder in enumerate(self.feeder_ids)]}

    def lines(self, district_of_feeder: list[str], hist: bool = True) -> list[str]:
        """Every meter's readings as ingest stores them: power,device=..,district=.. voltage_v, frequency_hz,
        power_kw, energy_kwh (a counter, what the meter recorded), seq, hist; one point per 10 minutes."""
        n_slots = self.voltage.shape[1]
        times = self.start_ms + np.arange(n_slots, dtype=np.int64) * SLOT_S * 1000
        rng = np.random.default_rng(len(self.customer_ids))
        out: list[str] = []
        meters = [(self.transformer_ids, self.transformer_voltage, self.transformer_kw,
                   district_of_feeder)]
        customer_districts = [district_of_feeder[f] for f in self.feeder_of]
        meters.append((self.customer_ids, self.voltage, self.customer_kw, customer_districts))
        hist_text = "true" if hist else "false"
        for ids, volts, kw, districts in meters:
            counter = np.cumsum(kw * SLOT_S / 3600, axis=1) + rng.uniform(100, 5000, (len(ids), 1))
            freq = self.frequency[None, :] + rng.normal(0, 0.002, (len(ids), n_slots))
            for i, device in enumerate(ids):  # rendering text: one line per reading is the output itself
                head = f"power,device={device},district={districts[i]} "
                out.extend(
                    f"{head}voltage_v={v:.2f},frequency_hz={hz:.3f},power_kw={p:.3f},energy_kwh={e:.3f},"
                    f"seq={s}i,hist={hist_text} {t}"
                    for s, (t, v, hz, p, e) in enumerate(zip(times.tolist(), volts[i].tolist(), freq[i].tolist(),
                                                             kw[i].tolist(), counter[i].tolist(), strict=True)))
        return out


def _curve(hourly: list[float], utc_offset_h: float, n_slots: int, start_ms: int) -> np.ndarray:
    """The hourly curve at each slot's local time, interpolated."""
    hours = ((start_ms / 3_600_000 + utc_offset_h + np.arange(n_slots) * SLOT_S / 3600) % 24)
    return np.interp(hours, np.arange(25), [*hourly, hourly[0]])


def simulate_feeders(*, feeders: int = 20, customers_per_feeder: tuple[int, int] = (20, 60), days: int = 28,
                     start_ms: int, nominal_v: float, nominal_hz: float, utc_offset_h: float,
                     household_curve: list[float], commercial_curve: list[float], seed: int = 1,
                     tamper_rate: float = 0.03, legit_drop_rate: float = 0.03, low_tap_rate: float = 0.1,
                     sag_rate: float = 0.1, frequency_events: list[tuple[int, int, float]] | None = None,
                     meter_error: tuple[float, float] = (0.003, 0.0005), prefix: str = "f") -> FeederCity:
    """A city's feeders for `days` days from `start_ms` (UTC ms, best a local midnight); see the module docstring.

    frequency_events: (first slot, slots, relative deviation) planted in the system frequency,
    e.g. (200, 12, -0.025): 2 hours at -2.5 %. meter_error: the standard deviation of the customer
    meters' and the transformer meters' gain errors. Raises ValueError on sizes out of range.
    """
    if not 1 <= feeders <= 20_000 or not 1 <= days <= 400:
        raise ValueError("feeders in 1..20000, days in 1..400")
    low, high = customers_per_feeder
    if not 1 <= low <= high <= 5_000:
        raise ValueError("customers_per_feeder: 1 <= low <= high <= 5000")
    rng = np.random.default_rng(seed)
    n_slots = days * SLOTS_PER_DAY
    counts = rng.integers(low, high + 1, feeders)
    feeder_of = np.repeat(np.arange(feeders), counts)
    n_c = int(counts.sum())
    commercial = rng.random(n_c) < 0.15
    curves = np.where(commercial[:, None], _curve(commercial_curve, utc_offset_h, n_slots, start_ms)[None, :],
                      _curve(household_curve, utc_offset_h, n_slots, start_ms)[None, :])
    size_kw = rng.lognormal(np.log(0.9), 0.5, n_c) * np.where(commercial, 4.0, 1.0)
    day_factor = np.repeat(rng.lognormal(0, 0.15, (n_c, days)), SLOTS_PER_DAY, axis=1)
    true_kw = size_kw[:, None] * curves * day_factor * rng.lognormal(0, 0.25, (n_c, n_slots))

    day_of_slot = np.arange(n_slots) // SLOTS_PER_DAY
    picks = rng.permutation(n_c)
    n_tamper, n_legit = round(tamper_rate * n_c), round(legit_drop_rate * n_c)
    tampered = {int(c): (int(rng.integers(days // 4, 3 * days // 4 + 1)), float(rng.uniform(0.3, 0.6)))
                for c in picks[:n_tamper]}
    legit = {int(c): int(rng.integers(days // 4, 3 * days // 4 + 1)) for c in picks[n_tamper:n_tamper + n_legit]}
    for c, first in legit.items():  # a handful of meters: a loop over the few planted changes
        true_kw[c, day_of_slot >= first] *= rng.uniform(0.3, 0.6)

    gain = 1 + rng.normal(0, meter_error[0], n_c)
    record = np.ones((n_c, n_slots))
    for c, (first, factor) in tampered.items():
        record[c, day_of_slot >= first] = factor
    metered_kw = true_kw * gain[:, None] * record

    bounds = np.concatenate([[0], np.cumsum(counts)[:-1]])
    feeder_kw = np.add.reduceat(true_kw, bounds, axis=0)  # customers are grouped by feeder
    variable_share = rng.uniform(0.025, 0.08, feeders)
    a = variable_share * feeder_kw.sum(axis=1) / (feeder_kw**2).sum(axis=1)
    no_load_kw = 0.005 * feeder_kw.mean(axis=1)
    loss_kw = a[:, None] * feeder_kw**2 + no_load_kw[:, None]
    transformer_kw = (feeder_kw + loss_kw) * (1 + rng.normal(0, meter_error[1], feeders))[:, None]
    unrecorded_kw = np.add.reduceat(true_kw * (1 - record), bounds, axis=0)

    def per_day(kw: np.ndarray) -> np.ndarray:
        return kw.reshape(kw.shape[0], days, SLOTS_PER_DAY).sum(axis=2) * SLOT_S / 3600

    tap = rng.uniform(-0.01, 0.04, feeders)
    low_tap = [int(f) for f in np.flatnonzero(rng.random(feeders) < low_tap_rate)]
    tap[low_tap] = -0.045
    drop_at_peak = rng.uniform(0.03, 0.07, feeders)
    position = rng.uniform(0.05, 1.0, n_c)
    load_ratio = feeder_kw / np.percentile(feeder_kw, 99, axis=1, keepdims=True)
    sending = nominal_v * (1 + tap[:, None] + rng.normal(0, 0.003, (feeders, n_slots)))
    voltage = sending[feeder_of] * (1 - drop_at_peak[feeder_of, None] * position[:, None] * load_ratio[feeder_of])
    voltage *= 1 + rng.normal(0, 0.002, (n_c, n_slots))
    transformer_voltage = sending.copy()
    sags = []
    for f in np.flatnonzero(rng.random(feeders) < sag_rate):  # a few planted events
        first, length = int(rng.integers(0, n_slots - 3)), int(rng.integers(1, 4))
        sags.append((int(f), first, length))
        voltage[feeder_of == f, first:first + length] = nominal_v * 0.80
        transformer_voltage[f, first:first + length] = nominal_v * 0.82

    events = list(frequency_events or [])
    frequency = nominal_hz * (1 + rng.normal(0, 0.0008, n_slots))
    for first, length, deviation in events:
        frequency[first:first + length] = nominal_hz * (1 + deviation)

    customer_ids = [f"{prefix}{f:04d}-c{c:03d}" for f, count in enumerate(counts) for c in range(int(count))]
    feeder_ids = [f"{prefix}dr-{f:04d}" for f in range(feeders)]
    transformer_ids = [f"{prefix}{f:04d}-tx" for f in range(feeders)]
    return FeederCity(
        start_ms, days, feeder_ids, transformer_ids, customer_ids, feeder_of, per_day(transformer_kw),
        per_day(metered_kw), per_day(loss_kw), per_day(unrecorded_kw), metered_kw, transformer_kw, voltage,
        transformer_voltage, frequency, tampered, legit, low_tap, sags, events)
