"""From readings to rule scores and incidents, for the engine and the evaluation alike.

`score_metric` runs everything that applies to one metric over a (series x
time) block: the statistical detectors and the metric's domain limits, and
names the rule behind each score. `device_rules` scores what belongs to a
whole device (silence, clock offset). `Hysteresis` turns scores into
incidents: one incident opens when a score reaches `open_score` and closes
only after `clear_samples` samples in a row below `clear_score`, so one
fault is one alert, not a storm.
"""

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numba
import numpy as np

from analytics import detectors as d
from analytics import jitcache  # noqa: F401  (before any cache=True kernel: the cache follows the sources)
from analytics.config import DEFAULT_PARAMS, DOMAIN_LIMITS, DetectorParams, Limit
from analytics.detectors import stream
from analytics.detectors.stream import StreamState

# Metrics the statistical detectors leave alone: a cumulative counter
# (energy only ever grows; its rate is power_kw) and free beds, which move
# in whole steps whenever a patient comes or goes (the ward_full rule covers them).
SKIP_STATISTICAL = frozenset({"energy_kwh", "beds_free"})

STATISTICAL_RULES = {
    "level": "unusual_value",
    "shift": "level_shift",
    "seasonal": "off_daily_profile",
    "flatline": "stuck_sensor",
    "drift": "drift",
}
DEVICE_RULES = ("silent", "clock_offset")
# A limit breach is certain, not a matter of degree: it scores this much.
LIMIT_SCORE = 1.0


@dataclass
class MetricScores:
    """(S, T) arrays: the highest score, the rule behind it, and that rule's severity (or '' to grade by score)."""

    score: np.ndarray
    rule: np.ndarray  # object array of rule names
    severity: np.ndarray  # object array: a limit's severity, or ''
    baseline: d.Baseline
    anchor: d.Anchor | None = None  # where the series should return to (see Hysteresis)


def score_metric(metric: str, values: np.ndarray, times: np.ndarray | None,
                 params: DetectorParams = DEFAULT_PARAMS,
                 limits: dict[str, list[Limit]] | None = None, history: d.History | None = None) -> MetricScores:
    """Every rule for one metric over (S, T) values; the highest score wins (history: see detectors.History)."""
    x = d.as_matrix(values)
    limits = DOMAIN_LIMITS if limits is None else limits
    if metric in SKIP_STATISTICAL:
        score = np.zeros(x.shape)
        rule = np.full(x.shape, "", dtype=object)
        baseline = d.robust_baseline(x, params)
        anchor = None
    else:
        stats = d.score_series(x, times, params, history=history)
        score = stats.combined
        names = np.array([STATISTICAL_RULES[name] for name in d.DETECTORS], dtype=object)
        rule = names[stats.winner]
        baseline = stats.baseline
        anchor = stats.anchor
    return _with_limits(metric, x, score, rule, baseline, anchor, params, limits)


def score_metric_new(metric: str, state: StreamState, rows: np.ndarray, values: np.ndarray, times: np.ndarray,
                     n_new: int, params: DetectorParams = DEFAULT_PARAMS, limits: dict[str, list[Limit]] | None = None,
                     history: d.History | stream.Tiers | None = None) -> MetricScores:
    """score_metric for the newest n_new samples of these rows only, going on from the detectors' `state`
    (detectors.stream: the engine's pass costs its new samples, not its whole buffer). values, times: the rows'
    ring buffers (the new samples last); returns (len(rows), n_new) arrays."""
    limits = DOMAIN_LIMITS if limits is None else limits
    x = d.as_matrix(values)[:, -n_new:]
    if metric in SKIP_STATISTICAL:
        baseline = stream.recent_new(state, rows, values, n_new, params)
        return _with_limits(metric, x, np.zeros(x.shape), np.full(x.shape, "", dtype=object), baseline, None,
                            params, limits)
    stats = stream.score_new(state, rows, values, times, n_new, params, history)
    names = np.array([STATISTICAL_RULES[name] for name in d.DETECTORS], dtype=object)
    return _with_limits(metric, x, stats.combined, names[stats.winner], stats.baseline, stats.anchor, params, limits)


def _with_limits(metric: str, x: np.ndarray, score: np.ndarray, rule: np.ndarray, baseline: d.Baseline,
                 anchor: d.Anchor | None, params: DetectorParams, limits: dict[str, list[Limit]]) -> MetricScores:
    """The statistical scores with the metric's domain limits on top: a breach scores LIMIT_SCORE."""
    severity = np.full(x.shape, "", dtype=object)
    for limit in limits.get(metric, []):
        breach = d.limit_score(x, limit) > 0
        if limit.severity == "info":
            # Advice (ventilate) never hides a statistical alarm on the same reading.
            breach &= score < params.open_score
        score = np.where(breach, LIMIT_SCORE, score)
        rule = np.where(breach, limit.rule, rule)
        severity = np.where(breach, limit.severity, severity)
    return MetricScores(score, rule, severity, baseline, anchor)


def grade(score: float, severity: str, params: DetectorParams = DEFAULT_PARAMS) -> str:
    """A limit brings its own severity; a statistical score is critical past critical_score."""
    if severity:
        return severity
    return "critical" if score >= params.critical_score else "warning"


def gap_intervals(present: np.ndarray) -> np.ndarray:
    """Per (series, step): how many steps in a row, up to this one, had no reading (0 when present)."""
    present = np.asarray(present, dtype=bool)
    if present.size == 0:
        return np.zeros(present.shape)
    index = np.arange(present.shape[1])
    last_seen = np.maximum.accumulate(np.where(present, index, -1), axis=1)
    # Before the first reading a device is new, not silent.
    return np.where(last_seen >= 0, index - last_seen, 0).astype(np.float64)


def silence_on_grid(present: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """silence_score for data on a regular grid, gaps counted in steps: 0 up to silence_factor, 1 at twice it."""
    gaps = gap_intervals(present)
    return np.clip((gaps - params.silence_factor) / params.silence_factor, 0.0, 1.0)


def clock_offset_score(lag_ms: np.ndarray, interval_ms: float, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """How far a device's clock has jumped: the delay between arrival and its timestamp, against its usual delay.

    lag_ms (S, T): arrival time minus the reading's own timestamp. Scored
    with the robust baseline; a change within `clock_tolerance_intervals`
    sampling intervals is never unusual (batching and network delay).
    """
    lag = d.as_matrix(lag_ms)
    baseline = d.robust_baseline(lag, params)
    tolerance = params.clock_tolerance_intervals * interval_ms
    with np.errstate(invalid="ignore"):
        excess = np.maximum(np.abs(lag - baseline.expected) - tolerance, 0.0)
        z = np.where(np.isnan(baseline.z), np.nan, excess / np.maximum(baseline.scale, tolerance / params.z_mid))
    return d.calibrate(z, params)


@dataclass
class Hysteresis:
    """Incident state per series, carried from one batch to the next."""

    active: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    calm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Known samples in a row at or above open_score while not yet active (the evidence so far).
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # The profile's running bias and scale at the last calm sample before an
    # incident, frozen while it is open (NaN: nothing to hold on).
    held_bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    held_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Samples in a row that only the hold kept active (see hold_max_samples).
    held_for: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Running mean of the departure from the frozen anchor (NaN: none yet).
    departure: np.ndarray = field(default_factory=lambda: np.zeros(0))

    # Every per-series field and what a new series starts with (state.py saves exactly these).
    FIELDS = {"active": False, "calm": 0, "pending": 0, "held_bias": np.nan, "held_scale": np.nan,
              "held_for": 0, "departure": np.nan}

    def resize(self, n_series: int) -> None:
        grow = n_series - self.active.size
        if grow > 0:
            for name, start in self.FIELDS.items():
                current = getattr(self, name)
                setattr(self, name, np.concatenate([current, np.full(grow, start, dtype=current.dtype)]))

    def step(self, score: np.ndarray, params: DetectorParams = DEFAULT_PARAMS,
             rows: np.ndarray | None = None, values: np.ndarray | None = None,
             anchor: d.Anchor | None = None) -> np.ndarray:
        """Feed (S, T) scores (NaN: no reading, state unchanged); returns (S, T) active flags.

        An incident opens after `confirm_samples` known samples in a row at or
        above open_score, or at once on a score of `critical_score` or more
        (a limit breach, a certain anomaly): one borderline sample is not
        enough evidence to wake the control room. It clears after
        `clear_samples` known samples in a row below clear_score on which it
        is not held.

        Hold (with `values` and their `anchor`, same shape as score): the
        detectors' running baselines learn a lasting fault as the new normal
        within an hour or two, so their scores fall while a leak still runs.
        An incident therefore stays open while the readings are still
        unusual against the daily profile plus the running bias as it was at
        the last calm sample before it opened (the calibrated running mean of that departure, over about
        1 / hold_alpha samples, >= clear_score), i.e. until the series is
        back where it was before the fault; at most
        `hold_max_samples` samples in a row (a new normal that the profile
        itself has not learnt yet must not keep an alert open for ever).

        rows: which series (of the state) the S rows of `score` are; all, in order, by default.
        """
        score = np.ascontiguousarray(score, dtype=np.float64)
        if rows is None:
            rows = np.arange(score.shape[0])
        self.resize(int(rows.max()) + 1 if rows.size else 0)
        active, calm, pending = self.active[rows], self.calm[rows], self.pending[rows]
        held_bias, held_scale = self.held_bias[rows], self.held_scale[rows]
        held_for, departure = self.held_for[rows], self.departure[rows]
        holding = values is not None and anchor is not None
        grids = [np.ascontiguousarray(a, dtype=np.float64) for a in (values, anchor.profile, anchor.bias,
                                                                     anchor.scale)] if holding else [_NONE] * 4
        out = np.zeros(score.shape, dtype=bool)
        _steps(score, *grids, active, calm, pending, held_bias, held_scale, held_for, departure, holding,
               params.open_score, params.clear_score, params.critical_score, params.confirm_samples,
               params.clear_samples, params.hold_alpha, params.hold_max_samples, _hold_z(params), out)
        self.active[rows], self.calm[rows], self.pending[rows] = active, calm, pending
        self.held_bias[rows], self.held_scale[rows], self.held_for[rows] = held_bias, held_scale, held_for
        self.departure[rows] = departure
        return out


_NONE = np.zeros((0, 0))


@lru_cache(maxsize=16)
def _hold_z(params: DetectorParams) -> float:
    """The least |z| whose calibrated score reaches clear_score (inf if none does): an incident is held while
    |departure| >= this, exactly where `calibrate(departure) >= clear_score` holds (calibrate rises with |z|;
    the search runs over the bits of non-negative floats, which are ordered as the floats are)."""
    def reaches(bits: int) -> bool:
        z = np.array([bits], dtype=np.int64).view(np.float64)
        return bool(d.calibrate(z, params)[0] >= params.clear_score)

    low, high = 0, int(np.array([math.inf]).view(np.int64)[0])  # 0.0 and inf, as bits
    if not reaches(high):
        return math.inf
    while low < high:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle + 1
    return float(np.array([low], dtype=np.int64).view(np.float64)[0])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _steps(score, values, profile, bias, scale, active, calm, pending, held_bias, held_scale, held_for, departure,
           holding, open_score, clear_score, critical_score, confirm_samples, clear_samples, hold_alpha,
           hold_max_samples, hold_z, out):
    """Hysteresis.step's rules, one series at a time: the state arrays (S,) are updated in place, `out` (S, T)
    gets the active flags. The series do not interact, so this is the column-by-column recursion of the whole
    block, in the same arithmetic (`values` .. `scale` are read only when `holding`)."""
    for s in range(score.shape[0]):
        is_active, calm_s, pending_s = active[s], calm[s], pending[s]
        bias_s, scale_s, held_for_s, departure_s = held_bias[s], held_scale[s], held_for[s], departure[s]
        for t in range(score.shape[1]):
            st = score[s, t]
            known = not math.isnan(st)
            high = known and st >= open_score
            if known:
                pending_s = pending_s + 1 if high and not is_active else 0
            opening = not is_active and high and (pending_s >= confirm_samples or st >= critical_score)
            quiet = known and is_active and st < clear_score
            if holding:
                # A running mean: one noisy reading neither holds an incident nor lets it go.
                now = (values[s, t] - profile[s, t] - bias_s) / scale_s
                if math.isnan(departure_s):
                    departure_s = now
                elif not math.isnan(now):
                    departure_s = departure_s + hold_alpha * (now - departure_s)
                held = quiet and abs(departure_s) >= hold_z
                held_for_s = held_for_s + 1 if held else 0
                quiet = quiet and (not held or held_for_s > hold_max_samples)
            if known and is_active:
                calm_s = calm_s + 1 if quiet else 0
            closing = is_active and calm_s >= clear_samples
            is_active = (is_active or opening) and not closing
            if opening or closing:
                calm_s = 0
            if opening:
                pending_s = 0
            if holding:
                # The reference is where the series was before the anomaly began (a slow
                # fault has moved the running bias by the time it opens an incident).
                if known and not is_active and st < clear_score:
                    bias_s, scale_s = bias[s, t], scale[s, t]
                if opening or closing:
                    held_for_s = 0
                    departure_s = math.nan
            out[s, t] = is_active
        active[s], calm[s], pending[s] = is_active, calm_s, pending_s
        held_bias[s], held_scale[s], held_for[s], departure[s] = bias_s, scale_s, held_for_s, departure_s


def incidents(active: np.ndarray) -> list[tuple[int, int, int]]:
    """(series, first active step, first step after it) for every run of active flags."""
    a = np.asarray(active, dtype=bool)
    padded = np.zeros((a.shape[0], a.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = a
    edges = np.diff(padded, axis=1)
    starts = np.argwhere(edges == 1)
    ends = np.argwhere(edges == -1)
    # argwhere is row-major, so starts and ends pair up in order.
    return [(int(s[0]), int(s[1]), int(e[1])) for s, e in zip(starts, ends, strict=True)]
