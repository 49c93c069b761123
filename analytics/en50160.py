"""EN 50160 weekly compliance of every meter at once: supply voltage variations and power frequency.

EN 50160:2010 (voltage characteristics of public distribution networks), low voltage:
- §4.2.2 supply voltage variations: during each week, 95 % of the 10-minute mean r.m.s. values
  within Un +-10 %, and all of them within Un +10 % / -15 %.
- §4.2.1 power frequency, the mean of the fundamental over 10 s:
  a system synchronously connected to an interconnected one: fn +-1 % during 99.5 % of a year,
  fn +4 % / -6 % during 100 % of the time; a system with no synchronous connection to an
  interconnected system (an island's): fn +-2 % during 99.5 % of a year (EN 50160:1999 and some meter
  vendors: 95 % of a week), fn +-15 % during 100 % of the time.
Which one the city has, and Un and fn, come from the city profile (grid.interconnected and the nominal
values); nothing here names a city. The standard gives the frequency shares over a year; this module
judges them over each week (the utility's reporting period) and says so in its output.

What our sampling allows: a meter reports instantaneous readings at its sampling interval (every
10 s live and every minute in replayed history in the simulator; many AMI meters every 15 min).
Voltage: the 10-minute means are means of the readings in each 10-minute slot. Frequency: each
reading stands for the 10-s mean of its window; at 10 s sampling that is every window, at one a
minute one window in six, at one per 10 minutes (the feeder simulator) one in sixty: a sample of
the week, unbiased, but blind to excursions shorter than the interval.

Missing values (NaN: an interruption, a silent meter) are left out, as the standard leaves out
interruptions; a week with fewer than MIN_COVERAGE of its slots has no verdict ("no_data").
"""

from dataclasses import dataclass

import numpy as np

SLOT_S = 600  # a 10-minute mean
SLOTS_PER_WEEK = 7 * 24 * 3600 // SLOT_S  # 1,008
VOLTAGE_BAND = 0.10  # +-10 % of Un ...
VOLTAGE_SHARE = 0.95  # ... for 95 % of a week's 10-minute means
VOLTAGE_ALWAYS = (-0.15, 0.10)  # and every one within -15 % / +10 %
FREQ_SHARE = 0.995
FREQ_BAND = {True: 0.01, False: 0.02}  # interconnected or not
FREQ_ALWAYS = {True: (-0.06, 0.04), False: (-0.15, 0.15)}
MIN_COVERAGE = 0.5  # a verdict needs half of the week's slots (or samples) present

PASS, FAIL, NO_DATA = "pass", "fail", "no_data"


@dataclass(frozen=True)
class Limits:
    """The EN 50160 limits for one grid, in volts and hertz."""

    nominal_v: float
    nominal_hz: float
    interconnected: bool

    @classmethod
    def from_grid(cls, grid: object) -> "Limits":
        """From the city profile's grid (telemetry_shared.city.Grid)."""
        return cls(float(grid.nominal_voltage_v), float(grid.nominal_frequency_hz), bool(grid.interconnected))

    @property
    def voltage_band_v(self) -> tuple[float, float]:
        return self.nominal_v * (1 - VOLTAGE_BAND), self.nominal_v * (1 + VOLTAGE_BAND)

    @property
    def voltage_always_v(self) -> tuple[float, float]:
        return self.nominal_v * (1 + VOLTAGE_ALWAYS[0]), self.nominal_v * (1 + VOLTAGE_ALWAYS[1])

    @property
    def frequency_band_hz(self) -> tuple[float, float]:
        band = FREQ_BAND[self.interconnected]
        return self.nominal_hz * (1 - band), self.nominal_hz * (1 + band)

    @property
    def frequency_always_hz(self) -> tuple[float, float]:
        low, high = FREQ_ALWAYS[self.interconnected]
        return self.nominal_hz * (1 + low), self.nominal_hz * (1 + high)

    def describe(self) -> dict:
        """The limits applied, for reports and --json."""
        return {"nominal_v": self.nominal_v, "nominal_hz": self.nominal_hz, "interconnected": self.interconnected,
                "voltage_band_v": list(self.voltage_band_v), "voltage_share": VOLTAGE_SHARE,
                "voltage_always_v": list(self.voltage_always_v), "frequency_band_hz": list(self.frequency_band_hz),
                "frequency_share": FREQ_SHARE, "frequency_always_hz": list(self.frequency_always_hz),
                "frequency_period": "week (the standard: a year)", "min_coverage": MIN_COVERAGE}


@dataclass(frozen=True)
class WeekVerdicts:
    """Per meter (rows) and week (columns). Shares are of the present values; NaN where none."""

    voltage_share_in_band: np.ndarray
    voltage_min_v: np.ndarray
    voltage_max_v: np.ndarray
    voltage_outside_always: np.ndarray  # count of 10-minute means outside -15/+10 %
    voltage_coverage: np.ndarray  # share of the week's slots present
    voltage: np.ndarray  # "pass" / "fail" / "no_data"
    frequency_share_in_band: np.ndarray
    frequency_min_hz: np.ndarray
    frequency_max_hz: np.ndarray
    frequency_outside_always: np.ndarray
    frequency_coverage: np.ndarray
    frequency: np.ndarray

    @property
    def overall(self) -> np.ndarray:
        """fail if either fails; pass if both pass; else no_data."""
        fail = (self.voltage == FAIL) | (self.frequency == FAIL)
        both = (self.voltage == PASS) & (self.frequency == PASS)
        return np.where(fail, FAIL, np.where(both, PASS, NO_DATA))


def _weeks(values: np.ndarray, per_week: int, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name}: a 2-D array (meters x samples), got {values.ndim}-D")
    if per_week < 1 or values.shape[1] % per_week:
        raise ValueError(f"{name}: {values.shape[1]} columns are not whole weeks of {per_week}")
    return values.reshape(values.shape[0], values.shape[1] // per_week, per_week)


def _judge(weeks: np.ndarray, band: tuple[float, float], always: tuple[float, float], share: float):
    present = np.isfinite(weeks)
    n = present.sum(axis=2)
    with np.errstate(invalid="ignore"):
        inside = ((weeks >= band[0]) & (weeks <= band[1])).sum(axis=2)
        outside_always = ((weeks < always[0]) | (weeks > always[1])).sum(axis=2)
    low = np.where(n > 0, np.min(np.where(present, weeks, np.inf), axis=2), np.nan)
    high = np.where(n > 0, np.max(np.where(present, weeks, -np.inf), axis=2), np.nan)
    return judge_counts(n, inside, outside_always, n / weeks.shape[2], low, high, share)


def judge_counts(n: np.ndarray, inside: np.ndarray, outside_always: np.ndarray, coverage: np.ndarray,
                 low: np.ndarray, high: np.ndarray, share: float) -> tuple:
    """The verdicts from counts per meter and week: n values present, `inside` the band, `outside_always`
    the always-limits; coverage is the share of the week present. Returns (share in band, low, high,
    outside_always, coverage, verdict), the fields of WeekVerdicts for one quantity."""
    n, inside, outside_always = (np.asarray(a, dtype=np.int64) for a in (n, inside, outside_always))
    share_in = np.where(n > 0, inside / np.maximum(n, 1), np.nan)
    # "95 % of the values" read as: at least that share (a count rounded up, as meters count N1/N).
    ok = (inside >= np.ceil(share * n - 1e-9)) & (outside_always == 0)
    verdict = np.where((coverage < MIN_COVERAGE) | (n == 0), NO_DATA, np.where(ok, PASS, FAIL))
    return share_in, low, high, outside_always, coverage, verdict


def weekly_compliance(voltage_10min: np.ndarray, frequency: np.ndarray, limits: Limits,
                      frequency_per_week: int | None = None) -> WeekVerdicts:
    """EN 50160 verdicts per meter and week, all meters at once.

    voltage_10min: (meters, weeks * 1,008) 10-minute mean voltages, volts, aligned to week starts; NaN
    where missing. frequency: (meters, weeks * k) frequency readings, hertz, standing for 10-s means
    (see the module docstring), k = frequency_per_week (default: the columns of one week if the
    array holds one week, else 1,008: one per 10 minutes). Returns WeekVerdicts of (meters, weeks).
    Raises ValueError for arrays that are not 2-D, not whole weeks, or of different meter counts.
    """
    v = _weeks(voltage_10min, SLOTS_PER_WEEK, "voltage_10min")
    per_week = frequency_per_week or SLOTS_PER_WEEK
    f = _weeks(frequency, per_week, "frequency")
    if f.shape[:2] != v.shape[:2]:
        raise ValueError(f"frequency has {f.shape[0]} meters x {f.shape[1]} weeks, voltage "
                         f"{v.shape[0]} x {v.shape[1]}")
    return WeekVerdicts(*_judge(v, limits.voltage_band_v, limits.voltage_always_v, VOLTAGE_SHARE),
                        *_judge(f, limits.frequency_band_hz, limits.frequency_always_hz, FREQ_SHARE))


def slot_means(meter: np.ndarray, t_ms: np.ndarray, value: np.ndarray, n_meters: int, start_ms: int,
               n_slots: int, slot_ms: int = SLOT_S * 1000) -> np.ndarray:
    """Means per (meter, slot) of long-format readings, NaN where a slot has none (np.bincount: no loop).

    meter: each reading's meter index (0..n_meters-1); t_ms: its time; value: the reading. Readings
    outside [start_ms, start_ms + n_slots * slot_ms) or not finite are ignored.
    """
    meter = np.asarray(meter, dtype=np.int64)
    slot = (np.asarray(t_ms, dtype=np.int64) - start_ms) // slot_ms
    value = np.asarray(value, dtype=np.float64)
    keep = (slot >= 0) & (slot < n_slots) & np.isfinite(value) & (meter >= 0) & (meter < n_meters)
    cell = meter[keep] * n_slots + slot[keep]
    sums = np.bincount(cell, weights=value[keep], minlength=n_meters * n_slots)
    counts = np.bincount(cell, minlength=n_meters * n_slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).reshape(n_meters, n_slots)
