"""A seeded, labelled corpus of timestamp,value CSVs, made up from first principles.

It looks like the kinds of data the CSV scorer will be judged on (road
traffic occupancy and speed, building and machine temperatures, service
load) without being any of them: we never look at a public benchmark's files
(that would be tuning on the test set). Each series is one of these families:

    occupancy      traffic occupancy %, 0-100, rush-hour peaks, quieter weekends, many zeros at night
    speed          traffic speed km/h, free flow with sudden rush-hour drops on working days
    counts         vehicles per interval: Poisson counts on a daily curve (integers, zeros at night)
    building_temp  room temperature: cooling on during working hours, off at night and at weekends
    machine_temp   a machine's temperature: slowly wandering (AR(1) plus a random walk), quantised to 0.1
    service_load   requests per interval: daily and weekly seasonality, a trend, heavy-tailed noise
    random_walk    no seasonality at all: a random walk with Student-t steps
    multi_season   a trend with daily, half-day and weekly cycles of random phases and sizes
    bursty         a quiet base with normal bursts of activity (a pump, a batch job) at random times
    stepwise       an integer level that steps up or down now and then (beds taken, machines running)

sampled every 1 to 15 minutes with jitter and gaps (a fifth of the series irregularly:
exponential gaps between readings), 1,000 to 20,000 rows, and
either clean (to measure false alarms) or with one kind of injected, labelled
anomaly (one or two windows of it):

    spike          one to three readings far off (up or down)
    level_shift    the level moves by several noise sigmas for a while, then returns
    drift          a slow ramp away from normal, then a return
    variance       the noise grows three to six times (a machine starting to vibrate)
    stuck          the sensor repeats its last reading
    pattern_loss   the daily pattern disappears: the series sits at its daily mean
    collapse       the reading falls to zero (a dead sensor, a closed road)
    dip            one to three readings far below normal
    contextual     for an hour or two the readings take the values of another time of day
                   (normal at noon, not at 3 am): a schedule gone wrong
    phase_shift    the daily pattern runs a few hours early or late for a day or more

Magnitudes are in units of each series' own noise, so an anomaly is as
visible on a quiet temperature as on a noisy load.

    python3 bench/csv_corpus.py --out /tmp/corpus --seed 1      # CSVs + windows.csv + corpus.json

Each CSV has the columns timestamp,value,label (label 1 inside a window).
"""

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.labelled import merge_windows

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC, a Wednesday

FAMILIES = ("occupancy", "speed", "counts", "building_temp", "machine_temp", "service_load", "random_walk",
            "multi_season", "bursty", "stepwise")
ANOMALIES = ("spike", "dip", "level_shift", "drift", "variance", "stuck", "pattern_loss", "collapse", "contextual",
             "phase_shift")
SEASONAL = {"occupancy", "speed", "counts", "building_temp", "service_load", "multi_season"}
INTERVALS_MIN = (1, 2, 5, 10, 15)
VISIBLE_SIGMAS = 3.0


@dataclass
class Series:
    """One generated file: its rows and where its anomalies are (row windows, end inclusive)."""

    name: str
    family: str
    anomaly: str  # "clean" or one of ANOMALIES
    interval_min: int
    times_ms: np.ndarray
    values: np.ndarray
    labels: np.ndarray  # 0/1 per row
    windows: list[tuple[int, int]] = field(default_factory=list)
    time_format: str = "iso"
    # Per window: the largest change the anomaly made to any of its readings, in the series' noise sigmas
    # (see _visibility; NaN: not judged). Below VISIBLE_SIGMAS no detector, causal or not, can tell the
    # window from noise: a dip at night clipped to a normal 0, a schedule gone wrong at an hour whose values
    # happen to match. The labels keep such windows (they are what was injected); the bench reports them apart.
    visibility: list[float] = field(default_factory=list)

    def csv_text(self) -> str:
        lines = ["timestamp,value,label"]
        for t, v, label in zip(self.times_ms.tolist(), self.values.tolist(), self.labels.tolist(), strict=True):
            lines.append(f"{_stamp(t, self.time_format)},{_number(v)},{label}")
        return "\n".join(lines) + "\n"


def _stamp(t_ms: int, style: str) -> str:
    if style == "epoch":
        return str(t_ms // 1000)
    seconds = t_ms // 1000
    days, rest = divmod(seconds, 86400)
    # Civil date from days since 1970-01-01 (no datetime objects: this runs for a million rows).
    y, m, d = _civil(days)
    text = f"{y:04d}-{m:02d}-{d:02d} {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return text.replace(" ", "T") + "Z" if style == "iso_z" else text


def _civil(days: int) -> tuple[int, int, int]:
    """Howard Hinnant's days_from_civil inverse."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


def _number(v: float) -> str:
    if math.isnan(v):
        return ""
    return repr(round(v, 4)) if v != int(v) else str(int(v))


# ---------------------------------------------------------------- normal behaviour


@dataclass
class Shape:
    """A family's clean signal, split so anomalies can act on its parts."""

    base: np.ndarray  # the expected value (seasonal curve, trend, wander)
    noise: np.ndarray  # what is added to it
    noise_sd: float  # the typical size of one reading's noise (robust)
    low: float | None = None  # physical bounds, applied after the anomaly
    high: float | None = None
    quantum: float = 0.0  # values are rounded to this (0: not)
    counts: bool = False  # Poisson counts: the noise is drawn from the rate, after the anomaly


def _clock(times_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hour = (times_ms % DAY_MS) / HOUR_MS
    weekday = (times_ms // DAY_MS + 3) % 7  # 0 = Monday
    return hour, weekday < 5


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def _occupancy(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    hour, working = _clock(times_ms)
    peak = rng.uniform(20, 45)
    day = peak * (_bump(hour, rng.uniform(7, 8.5), 1.0) + 0.8 * _bump(hour, rng.uniform(16.5, 18), 1.5))
    day += peak * 0.35 * ((hour > 6) & (hour < 21))
    base = np.where(working, day, 0.55 * day)
    sd = rng.uniform(1.0, 3.0)
    noise = rng.normal(0, sd, times_ms.size) * np.sqrt(np.maximum(base, 1) / max(peak, 1))
    # Night: nobody on the loop, the reading is 0 (a bounded series with many zeros).
    return Shape(base, noise, sd, 0.0, 100.0, quantum=rng.choice([1.0, 0.1]))


def _speed(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    hour, working = _clock(times_ms)
    free = rng.uniform(55, 95)
    sd = rng.uniform(1.5, 4.0)
    # Rush hour: a sudden drop (congestion sets in within a reading or two), a slower recovery.
    day = (times_ms - times_ms[0]) // DAY_MS
    onset = (rng.uniform(6.8, 7.6) + rng.normal(0, 0.15, int(day[-1]) + 1))[day]  # a little earlier or later each day
    drop = rng.uniform(0.3, 0.6) * free
    morning = ((hour >= onset) & (hour < onset + rng.uniform(1.0, 2.0))).astype(float)
    evening = _bump(hour, rng.uniform(17, 18.5), 0.8)
    base = free - np.where(working, drop * morning + 0.7 * drop * evening, 0.15 * drop * evening)
    noise = rng.standard_t(4, times_ms.size) * sd / 1.2
    return Shape(base, noise, sd, 0.0, None, quantum=rng.choice([1.0, 0.5]))


def _counts(times_ms: np.ndarray, rng: np.random.Generator, interval_min: int) -> Shape:
    hour, working = _clock(times_ms)
    per_minute = rng.uniform(2, 15)
    curve = 0.02 + _bump(hour, 8, 1.5) + 0.9 * _bump(hour, 17.5, 2.0) + 0.4 * ((hour > 7) & (hour < 20))
    rate = per_minute * interval_min * curve * np.where(working, 1.0, 0.6)
    return Shape(rate, np.zeros(times_ms.size), math.sqrt(float(np.median(rate))), 0.0, None, counts=True)


def _building_temp(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    hour, working = _clock(times_ms)
    outdoor = rng.uniform(26, 31) + 2.5 * np.sin(2 * np.pi * (hour - 9) / 24)
    setpoint = rng.uniform(21, 24)
    on_at, off_at = rng.uniform(6, 7.5), rng.uniform(17.5, 19.5)
    cooling = working & (hour >= on_at) & (hour < off_at)
    # The room follows its target with a lag of about half an hour (an exponential filter).
    target = np.where(cooling, setpoint, outdoor)
    base = _lagged(target, times_ms, 0.5 * HOUR_MS)
    sd = rng.uniform(0.05, 0.25)
    noise = _ar1(rng, times_ms.size, 0.7, sd)
    return Shape(base, noise, sd, quantum=rng.choice([0.1, 0.01, 0.5]))


def _machine_temp(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    n = times_ms.size
    sd = rng.uniform(0.1, 0.5)
    wander = np.cumsum(rng.normal(0, sd * 0.08, n))
    slow = _ar1(rng, n, 0.995, sd * 3)
    base = rng.uniform(40, 80) + wander + slow
    noise = rng.normal(0, sd, n)
    return Shape(base, noise, sd, quantum=rng.choice([0.1, 0.0, 1.0]))


def _service_load(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    hour, working = _clock(times_ms)
    level = rng.uniform(100, 2000)
    curve = 0.3 + _bump(hour, rng.uniform(10, 14), 3.0) + 0.3 * _bump(hour, 20, 2.0)
    days = (times_ms - times_ms[0]) / DAY_MS
    trend = 1 + rng.uniform(-0.01, 0.03) * days
    base = level * curve * np.where(working, 1.0, rng.uniform(0.4, 0.8)) * trend
    sd = level * rng.uniform(0.02, 0.06)
    noise = rng.standard_t(3, times_ms.size) * sd
    return Shape(base, noise, sd, 0.0, None, quantum=rng.choice([1.0, 0.0]))


def _random_walk(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    n = times_ms.size
    sd = rng.uniform(0.2, 2.0)
    base = rng.uniform(-50, 50) + np.cumsum(rng.standard_t(5, n) * sd * 0.3)
    noise = rng.normal(0, sd, n)
    return Shape(base, noise, sd)


def _multi_season(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    hour, working = _clock(times_ms)
    days = (times_ms - times_ms[0]) / DAY_MS
    level = rng.uniform(10, 500)
    week = 2 * np.pi * ((times_ms // DAY_MS + 3) % 7 + hour / 24) / 7
    curve = (1 + rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * hour / 24 + rng.uniform(0, 6.3))
             + rng.uniform(0.0, 0.2) * np.sin(4 * np.pi * hour / 24 + rng.uniform(0, 6.3))
             + rng.uniform(0.0, 0.2) * np.sin(week + rng.uniform(0, 6.3)))
    base = level * curve * (1 + rng.uniform(-0.01, 0.02) * days)
    sd = level * rng.uniform(0.01, 0.04)
    noise = _ar1(rng, times_ms.size, rng.uniform(0.0, 0.6), sd)
    return Shape(base, noise, sd, quantum=rng.choice([0.0, 0.1, 1.0]))


def _bursty(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    n = times_ms.size
    level = rng.uniform(5, 50)
    sd = level * rng.uniform(0.02, 0.06)
    on = np.zeros(n)
    at = 0
    while at < n:  # generator only: bursts of 3-30 readings every 20-200 readings
        at += int(rng.integers(20, 200))
        on[at:at + int(rng.integers(3, 30))] = 1.0
    base = level + on * level * rng.uniform(0.5, 2.0)
    noise = rng.normal(0, sd, n) * (1 + on)
    return Shape(base, noise, sd, 0.0, None, quantum=rng.choice([0.0, 0.1]))


def _stepwise(times_ms: np.ndarray, rng: np.random.Generator) -> Shape:
    n = times_ms.size
    capacity = int(rng.integers(8, 60))
    steps = np.where(rng.random(n) < rng.uniform(0.02, 0.1), rng.choice([-1.0, 1.0], n), 0.0)
    base = np.clip(capacity * 0.6 + np.cumsum(steps), 0, capacity)
    return Shape(base, np.zeros(n), 1.0, 0.0, float(capacity), quantum=1.0)


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    from scipy.signal import lfilter

    shocks = rng.normal(0, sd * math.sqrt(1 - phi * phi), n)
    return lfilter([1.0], [1.0, -phi], shocks)


def _lagged(target: np.ndarray, times_ms: np.ndarray, tau_ms: float) -> np.ndarray:
    out = np.empty_like(target)
    out[0] = target[0]
    steps = np.diff(times_ms, prepend=times_ms[0])
    gains = 1 - np.exp(-steps / tau_ms)
    for i in range(1, target.size):  # generator only, not the scorer: a plain loop is fine
        out[i] = out[i - 1] + gains[i] * (target[i] - out[i - 1])
    return out


def _shape(family: str, times_ms: np.ndarray, rng: np.random.Generator, interval_min: int) -> Shape:
    if family == "counts":
        return _counts(times_ms, rng, interval_min)
    return {"occupancy": _occupancy, "speed": _speed, "building_temp": _building_temp,
            "machine_temp": _machine_temp, "service_load": _service_load,
            "random_walk": _random_walk, "multi_season": _multi_season, "bursty": _bursty,
            "stepwise": _stepwise}[family](times_ms, rng)


# ---------------------------------------------------------------- anomalies


def _window(rng: np.random.Generator, n: int, low: int, high: int) -> tuple[int, int]:
    """A window of length in [low, high] starting between 40 % and 85 % of the series."""
    length = int(rng.integers(low, high + 1))
    length = min(length, n // 6)
    start = int(rng.integers(int(0.4 * n), max(int(0.85 * n) - length, int(0.4 * n) + 1)))
    return start, start + length - 1


def _inject(kind: str, shape: Shape, rng: np.random.Generator, per_day: float) -> list[tuple[int, int]]:
    """Change `shape` in place; returns the labelled windows (rows, end inclusive)."""
    n = shape.base.size
    # The unit of every magnitude: the noise, or the rounding step where that is coarser (a 0.5 degC
    # sensor with 0.05 degC of noise moves in 0.5 steps; six noise sigmas would round to nothing).
    sd = max(shape.noise_sd, shape.quantum)
    if kind in ("spike", "dip"):
        windows = []
        for _ in range(int(rng.integers(1, 3))):
            start, end = _window(rng, n, 1, 3)
            sign = 1.0 if kind == "spike" else -1.0
            shape.base[start:end + 1] += sign * rng.uniform(6, 15) * sd
            windows.append((start, end))
        return merge_windows(windows)
    if kind == "level_shift":
        start, end = _window(rng, n, 100, 1500)
        sign = rng.choice([-1.0, 1.0])
        shape.base[start:end + 1] += sign * rng.uniform(3, 8) * sd
        return [(start, end)]
    if kind == "drift":
        start, end = _window(rng, n, 300, 3000)
        ramp = np.linspace(0, 1, end - start + 1)
        shape.base[start:end + 1] += rng.choice([-1.0, 1.0]) * rng.uniform(5, 12) * sd * ramp
        return [(start, end)]
    if kind == "variance":
        start, end = _window(rng, n, 150, 2000)
        factor = rng.uniform(3, 6)
        if shape.counts:  # counts: overdispersion, the rate itself jitters
            shape.base[start:end + 1] *= np.exp(rng.normal(0, 0.1 * factor, end - start + 1))
        else:
            shape.noise[start:end + 1] *= factor
        return [(start, end)]
    if kind == "stuck":
        start, end = _window(rng, n, 40, 500)
        return [(start, end)]  # applied after the noise (see _finish)
    if kind == "pattern_loss":
        start, end = _window(rng, n, int(per_day), int(3 * per_day))
        mean = float(np.mean(shape.base[max(0, start - int(per_day)):start]))
        shape.base[start:end + 1] = mean
        return [(start, end)]
    if kind == "collapse":
        start, end = _window(rng, n, 40, 500)
        return [(start, end)]  # applied after the noise
    if kind == "contextual":
        # The curve of 8 to 16 hours earlier: values that are normal at another time of day.
        start, end = _window(rng, n, max(3, int(per_day / 24)), max(4, int(per_day / 12)))
        back = int(per_day * rng.uniform(8, 16) / 24)
        if start - back >= 0:
            shape.base[start:end + 1] = shape.base[start - back:end + 1 - back]
        return [(start, end)]
    if kind == "phase_shift":
        start, end = _window(rng, n, int(per_day), int(2 * per_day))
        back = int(per_day * rng.uniform(2, 5) / 24) * int(rng.choice([-1, 1]))
        shape.base[start:end + 1] = shape.base[start - back:end + 1 - back]
        return [(start, end)]
    raise ValueError(f"unknown anomaly {kind!r}")


def _finish(shape: Shape, kind: str, windows: list[tuple[int, int]], rng: np.random.Generator) -> np.ndarray:
    # Counts are drawn from the (anomalous) rate; everything else is its curve plus its noise.
    values = rng.poisson(np.maximum(shape.base, 0)).astype(float) if shape.counts else shape.base + shape.noise
    if shape.low is not None or shape.high is not None:
        values = np.clip(values, shape.low, shape.high)
    if shape.quantum:
        values = np.round(values / shape.quantum) * shape.quantum
    for start, end in windows:
        if kind == "stuck":
            values[start:end + 1] = values[start - 1]
        elif kind == "collapse":
            values[start:end + 1] = 0.0
    return values


# ---------------------------------------------------------------- times


def _times(rng: np.random.Generator, n: int, interval_min: int) -> np.ndarray:
    """n jittered sample times (ms) starting on a random day at midnight."""
    step = interval_min * MINUTE_MS
    jitter = rng.uniform(0, 0.15) * step
    start = START_MS + int(rng.integers(0, 365)) * DAY_MS
    if rng.random() < 0.2:  # irregular: exponential gaps between readings (an event-driven logger)
        times = start + np.cumsum(rng.exponential(step, n)).astype(np.int64)
        return np.maximum.accumulate(times) // 1000 * 1000
    times = start + np.arange(n, dtype=np.int64) * step + rng.normal(0, jitter / 3, n).astype(np.int64)
    times = np.maximum.accumulate(times)
    return times // 1000 * 1000  # whole seconds, as a logger writes them


def _gaps(rng: np.random.Generator, n: int, windows: list[tuple[int, int]]) -> np.ndarray:
    """Rows to keep: a few missing stretches (a logger down), never inside or just before an anomaly."""
    keep = np.ones(n, dtype=bool)
    protected = np.zeros(n, dtype=bool)
    for start, end in windows:
        protected[max(0, start - 50):end + 50] = True
    for _ in range(int(rng.integers(0, 4))):
        length = int(rng.integers(5, 200))
        at = int(rng.integers(100, max(101, n - length)))
        if not protected[at:at + length].any():
            keep[at:at + length] = False
    keep[rng.random(n) < rng.uniform(0, 0.01)] = False  # single lost readings
    keep[protected] = True
    return keep


# ---------------------------------------------------------------- the corpus


def make_series(name: str, family: str, anomaly: str, rng: np.random.Generator,
                intervals_min: tuple[int, ...] = INTERVALS_MIN) -> Series:
    interval_min = int(rng.choice(intervals_min))
    per_day = 1440 // interval_min
    if anomaly in ("pattern_loss", "contextual", "phase_shift"):
        # A daily pattern must exist before it can disappear: at least a week of it.
        n = int(rng.integers(max(1000, 10 * per_day), max(1001, min(20_000, 25 * per_day))))
    else:
        n = int(rng.integers(1000, 20_001))
    times = _times(rng, n, interval_min)
    shape = _shape(family, times, rng, interval_min)
    clean_base, clean_noise = shape.base.copy(), shape.noise.copy()
    windows = [] if anomaly == "clean" else _inject(anomaly, shape, rng, per_day)
    values = _finish(shape, anomaly, windows, rng)
    visibility = _visibility(shape, anomaly, clean_base, clean_noise, values, windows)
    labels = np.zeros(n, dtype=np.int8)
    for start, end in windows:
        labels[start:end + 1] = 1
    keep = _gaps(rng, n, windows)
    new_index = np.cumsum(keep) - 1
    windows = [(int(new_index[s]), int(new_index[e])) for s, e in windows]
    style = str(rng.choice(["iso", "iso", "iso_z", "epoch"]))
    return Series(name, family, anomaly, interval_min, times[keep], values[keep], labels[keep], windows, style,
                  visibility)


def _visibility(shape: Shape, kind: str, clean_base: np.ndarray, clean_noise: np.ndarray, values: np.ndarray,
                windows: list[tuple[int, int]]) -> list[float]:
    """Per window, max over its rows of |reading - the same reading without the anomaly| / the noise sigma.

    Exact where the noise is additive (the clean reading is the same base and noise, bounded and rounded
    the same way); for Poisson counts, against the clean rate, in units of its Poisson sigma (a count's
    own noise is drawn after the anomaly, so there is no clean twin of the draw). NaN (not judged) for
    stuck and variance, which show in repeats and spread rather than in any one reading's size.
    """
    if kind in ("stuck", "variance"):
        return [math.nan for _ in windows]
    if shape.counts:
        clean = np.maximum(clean_base, 0)
        # Stuck and collapse act on the drawn counts; the other anomalies on the rate.
        changed = values if kind in ("stuck", "collapse") else np.maximum(shape.base, 0)
        change = np.abs(changed - clean)
        unit = np.sqrt(np.maximum(clean, 1.0))
    else:
        clean = clean_base + clean_noise
        if shape.low is not None or shape.high is not None:
            clean = np.clip(clean, shape.low, shape.high)
        if shape.quantum:
            clean = np.round(clean / shape.quantum) * shape.quantum
        change = np.abs(values - clean)
        unit = np.full(values.size, max(shape.noise_sd, shape.quantum))
    return [float(np.max(change[start:end + 1] / unit[start:end + 1])) for start, end in windows]


def _family_for(anomaly: str, rng: np.random.Generator) -> str:
    """Families that can show the anomaly: a daily pattern must exist to be lost."""
    if anomaly in ("pattern_loss", "contextual", "phase_shift"):
        return str(rng.choice(sorted(SEASONAL)))
    if anomaly == "collapse":
        # A random walk may wander through 0 itself; everywhere else 0 is off the usual range by day.
        return str(rng.choice([f for f in FAMILIES if f not in ("random_walk", "stepwise")]))
    if anomaly in ("stuck", "variance"):
        # A step-wise level holds still most of the time and has no noise to grow.
        return str(rng.choice([f for f in FAMILIES if f != "stepwise"]))
    return str(rng.choice(FAMILIES))


def make_corpus(seed: int = 1, per_anomaly: int = 12, clean: int = 36,
                intervals_min: tuple[int, ...] = INTERVALS_MIN) -> list[Series]:
    """`per_anomaly` series of each anomaly type and `clean` series without any, all from one seed, each read
    every one of `intervals_min` minutes (drawn per series; the same draws for the same number of choices)."""
    rng = np.random.default_rng(seed)
    plan = [(kind, _family_for(kind, rng)) for kind in ANOMALIES for _ in range(per_anomaly)]
    plan += [("clean", FAMILIES[i % len(FAMILIES)]) for i in range(clean)]
    corpus = []
    for index, (kind, family) in enumerate(plan):
        series_rng = np.random.default_rng([seed, index])
        corpus.append(make_series(f"{index:03d}_{family}_{kind}", family, kind, series_rng, intervals_min))
    return corpus


def write_corpus(corpus: list[Series], out: Path) -> None:
    """One CSV per series, windows.csv (file,start,end as timestamps) and corpus.json (what each file is)."""
    out.mkdir(parents=True, exist_ok=True)
    window_lines = ["file,start,end"]
    meta = []
    for series in corpus:
        path = out / f"{series.name}.csv"
        path.write_text(series.csv_text())
        for start, end in series.windows:
            window_lines.append(f"{path.name},{_stamp(int(series.times_ms[start]), 'iso')},"
                                f"{_stamp(int(series.times_ms[end]), 'iso')}")
        meta.append({"file": path.name, "family": series.family, "anomaly": series.anomaly,
                     "interval_min": series.interval_min, "rows": int(series.values.size),
                     "windows": series.windows})
    (out / "windows.csv").write_text("\n".join(window_lines) + "\n")
    (out / "corpus.json").write_text(json.dumps(meta, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSVs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-anomaly", type=int, default=12)
    parser.add_argument("--clean", type=int, default=36)
    args = parser.parse_args(argv)
    corpus = make_corpus(args.seed, args.per_anomaly, args.clean)
    write_corpus(corpus, args.out)
    rows = sum(s.values.size for s in corpus)
    print(f"{len(corpus)} files, {rows:,} rows in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
