"""Incremental scoring: score_series' detectors with their state carried from one pass to the next.

The engine used to score every series with new readings over its whole ring
buffer on every pass (1,440 samples to judge one new reading: ~20 ms a series
a pass, too slow for 100,000 devices). Here each recursion (the recent level,
the quarter-day scale floor, the profile fits, the CUSUMs, the drift levels,
the stuck-sensor counts) keeps its state per series in a `StreamState`, and a
pass costs the new samples only: the profile looks up the same local time of
earlier days for the new samples alone (in the ring buffer, else the coarse
history), and the profile's usual error at that hour is read from a ring of
the fit's past errors kept beside the buffer.

Fed a series in chunks, with the buffer holding everything before each
chunk, the outputs are those of `score_series` over the whole array
(tests/analytics/test_stream.py). Where they differ on purpose: the sampling
interval (the profile's tolerance, the scale floor's memory, the profile
error's hour) is each series' own over its newest `INTERVAL_SAMPLES`
samples, where score_series takes the median over the block's series and the
whole array; on a regular grid the two are the same. The CSV row score
(`with_evidence`, the point z) and a smoothed profile (`profile_smooth_samples`)
are score_series' only.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from analytics.buffers import grown, growth
from analytics.config import DAY_MS, DEFAULT_PARAMS, DetectorParams
from analytics.detectors import stream_kernels as k
from analytics.detectors.base import Anchor, Baseline, DetectorInputError, History, median_of_few
from analytics.detectors.combined import DETECTORS, Scores, _strongest
from analytics.detectors.seasonal import _history_at, _is_day_off, _same_local_time, day_type_profile

# The newest samples whose intervals give a series' sampling interval (median) and its long interval (90th pct).
INTERVAL_SAMPLES = 64
HOLTS = ("recent", "widen", "drift_fast", "drift_slow", "drift_trend")  # then one profile fit per period
CUSUMS = ("recent", "season", "plain")


def _fields(periods: int, hold: int) -> dict[str, tuple[tuple[int, ...], np.ndarray | float]]:
    """Every per-series array of a StreamState: (shape after the series axis, start value)."""
    holts = len(HOLTS) + periods
    return {"holt": ((holts, k.HOLT_WIDTH), np.broadcast_to(k.HOLT_START, (holts, k.HOLT_WIDTH))),
            "cusum": ((len(CUSUMS), k.CUSUM_WIDTH), np.broadcast_to(k.CUSUM_START, (len(CUSUMS), k.CUSUM_WIDTH))),
            "flat": ((k.FLAT_WIDTH,), k.FLAT_START),
            "drift_last": ((max(hold - 1, 1),), math.nan),  # the newest drift evidence (a running minimum's window)
            "scored": ((), 0.0)}  # samples scored so far (0: a new or rebuilt series)


@dataclass
class StreamState:
    """What the detectors carry between passes, one row per series (rows as the metric's SeriesBlock).

    `errors[p]`: (rows, buffer samples) float32, the profile fit's absolute
    error of period p at each buffer position (shifted with the buffer), from
    which the profile's usual error at the same hour of earlier days is read;
    None until that profile exists.
    """

    periods: int
    hold: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    errors: list[np.ndarray | None] = field(default_factory=list)

    @classmethod
    def empty(cls, params: DetectorParams = DEFAULT_PARAMS) -> "StreamState":
        state = cls(len(params.season_periods_ms), params.drift_hold_samples)
        state.arrays = {name: np.empty((0, *shape)) for name, (shape, _) in state.fields().items()}
        state.errors = [None] * state.periods
        return state

    def fields(self) -> dict:
        return _fields(self.periods, self.hold)

    @property
    def rows(self) -> int:
        return self.arrays["scored"].shape[0]

    def resize(self, n_rows: int) -> None:
        """Room for n_rows series; new ones start fresh."""
        grow = n_rows - self.rows
        if grow <= 0:
            return
        grow = max(grow, 64, growth(self.rows))  # amortised, as the SeriesBlock grows
        rows = self.rows + grow
        for name, (_, start) in self.fields().items():
            self.arrays[name] = grown(self.arrays[name], rows, start)
        self.errors = [None if e is None else grown(e, e.shape[0] + grow, np.nan) for e in self.errors]

    def forget(self, rows: np.ndarray) -> None:
        """Start these series afresh (their state is rebuilt from the buffer on their next pass)."""
        for name, (_, start) in self.fields().items():
            self.arrays[name][rows] = start
        for errors in self.errors:
            if errors is not None:
                errors[rows] = np.nan

    def copy(self) -> "StreamState":
        return StreamState(self.periods, self.hold, {n: a.copy() for n, a in self.arrays.items()},
                           [None if e is None else e.copy() for e in self.errors])

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values()) + sum(e.nbytes for e in self.errors if e is not None)


def score_new(state: StreamState, rows: np.ndarray, values: np.ndarray, times: np.ndarray, n_new: int,
              params: DetectorParams = DEFAULT_PARAMS, history: "History | Tiers | None" = None) -> Scores:
    """Score the newest `n_new` samples of these series, going on from `state`, which it updates.

    rows: the series' rows in `state`; values, times: their ring buffers
    (len(rows), T), newest last, the new samples the last n_new columns (the
    older columns are what the profile looks up); history: their coarse
    history (detectors.History) for what the buffer no longer holds.
    Returns Scores over the new samples, (len(rows), n_new). Call once per
    new sample: a sample scored twice moves the state twice.
    """
    if params.profile_smooth_samples:
        raise DetectorInputError("the incremental scorer reads earlier days as they are (profile_smooth_samples 0)")
    if not 0 < n_new <= values.shape[1]:
        raise DetectorInputError(f"n_new must be in 1..{values.shape[1]}, got {n_new}")
    state.resize(int(rows.max()) + 1 if rows.size else 0)
    x = np.ascontiguousarray(values[:, -n_new:], dtype=np.float64)
    t = np.ascontiguousarray(times[:, -n_new:], dtype=np.int64)
    step, long_step = k.intervals(np.ascontiguousarray(times), INTERVAL_SAMPLES)
    holt = state.arrays["holt"][rows]
    cusum = state.arrays["cusum"][rows]
    recent = _baseline(x, holt, 0, params.level_alpha, params.scale_alpha, params.level_alpha * params.trend_beta,
                       params)
    season = _season(state, rows, x, t, values, times, holt, long_step, step, params, history)
    has_season = np.isfinite(season.z)
    recent = _widened(x, recent, has_season, holt, step, params)
    use_season = has_season & (season.scale < recent.scale)
    z = np.where(use_season, season.z, recent.z)
    recent_z, season_z, plain_z = (np.nan_to_num(a) for a in (recent.z, season.z, season.plain_z))
    up = np.minimum(np.minimum(recent_z, season_z), plain_z)
    down = np.minimum(np.minimum(-recent_z, -season_z), -plain_z)
    both = np.where(has_season, np.maximum(np.maximum(up, down), 0.0), np.abs(recent_z))
    recent_up, recent_down = _cusum(recent.z, cusum, 0, params)
    season_up, season_down = _cusum(season.z, cusum, 1, params)
    plain_up, plain_down = _cusum(season.plain_z, cusum, 2, params)
    against_both = np.maximum(np.minimum(season_up, plain_up), np.minimum(season_down, plain_down))
    shift = np.where(has_season, against_both, np.maximum(recent_up, recent_down))
    flat = np.empty(x.shape)
    flat_state = state.arrays["flat"][rows]
    k.flatline(x, flat, flat_state, float(params.warmup), float(params.flatline_min_run))
    evidence = {
        "level": np.where(use_season, 0.0, both),
        "shift": shift,
        "seasonal": np.where(use_season, both, 0.0),
        "flatline": flat * (params.z_mid / params.flatline_nats),
        "drift": _drift(state, rows, x - season.profile, season.scale, holt, params),
    }
    baseline = Baseline(np.where(use_season, season.expected, recent.expected),
                        np.where(use_season, season.scale, recent.scale), z)
    scores = _strongest(evidence, baseline, params)
    scores.evidence = {}
    scores.anchor = Anchor(season.profile, season.expected - season.profile, season.scale)
    state.arrays["holt"][rows], state.arrays["cusum"][rows], state.arrays["flat"][rows] = holt, cusum, flat_state
    state.arrays["scored"][rows] += n_new
    return scores


def recent_new(state: StreamState, rows: np.ndarray, values: np.ndarray, n_new: int,
               params: DetectorParams = DEFAULT_PARAMS) -> Baseline:
    """robust_baseline of the newest n_new samples, going on from `state` (for the metrics scored by limits only)."""
    state.resize(int(rows.max()) + 1 if rows.size else 0)
    x = np.ascontiguousarray(values[:, -n_new:], dtype=np.float64)
    holt = state.arrays["holt"][rows]
    recent = _baseline(x, holt, 0, params.level_alpha, params.scale_alpha, params.level_alpha * params.trend_beta,
                       params)
    state.arrays["holt"][rows] = holt
    state.arrays["scored"][rows] += n_new
    return recent


# ---------------------------------------------------------------- pieces


def _run_holt(x: np.ndarray, holt: np.ndarray, index: int, a_level, a_scale, a_trend,
              params: DetectorParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One of the series' Holt recursions (holt[:, index]) over x: (expected, scale, readings seen before)."""
    n = x.shape[0]
    expected, scale, seen = np.empty(x.shape), np.empty(x.shape), np.empty(x.shape)
    state = np.ascontiguousarray(holt[:, index])
    k.holt(np.ascontiguousarray(x), expected, scale, seen, state, np.broadcast_to(np.asarray(a_level, float), n).copy(),
           np.broadcast_to(np.asarray(a_scale, float), n).copy(), np.broadcast_to(np.asarray(a_trend, float), n).copy(),
           int(params.warmup), float(params.huber_clip), float(params.mad_to_sigma), float(params.rel_scale_floor),
           float(params.abs_scale_floor))
    holt[:, index] = state
    return expected, scale, seen


def _baseline(x: np.ndarray, holt: np.ndarray, index: int, a_level, a_scale, a_trend,
              params: DetectorParams) -> Baseline:
    """robust_baseline from the state holt[:, index]."""
    expected, scale, seen = _run_holt(x, holt, index, a_level, a_scale, a_trend, params)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(seen >= params.warmup, (x - expected) / scale, np.nan)
    return Baseline(expected, scale, z)


def _cusum(z: np.ndarray, cusum: np.ndarray, index: int, params: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    h = params.cusum_h
    upper, lower = np.empty(z.shape), np.empty(z.shape)
    state = np.ascontiguousarray(cusum[:, index])
    k.cusum(np.ascontiguousarray(z, dtype=np.float64), upper, lower, state, float(params.cusum_k), float(h),
            float(params.cusum_rho_alpha), float(params.z_mid / h), float(params.cusum_cap * h))
    cusum[:, index] = state
    return upper, lower


def _widened(x: np.ndarray, recent: Baseline, keep: np.ndarray, holt: np.ndarray, step: np.ndarray,
             params: DetectorParams) -> Baseline:
    """combined._widened: the recent level's scale never below day_scale_floor times its errors' scale over a
    quarter day, except where a profile exists (keep)."""
    if params.day_scale_floor <= 0:
        return recent
    # A series' first readings have no interval yet; its first ~360 updates are running means (1/n) whatever
    # the factor, so the factor only matters once the interval is known.
    quarter_day = np.minimum(1.0, 4.0 * np.nan_to_num(step, nan=DAY_MS / 4.0) / DAY_MS)
    error = x - recent.expected
    floor = _run_holt(error, holt, HOLTS.index("widen"), quarter_day, quarter_day, 0.0, params)[1]
    floor *= params.day_scale_floor
    scale = np.fmax(recent.scale, floor)
    scale = np.where(keep | np.isnan(step)[:, None], recent.scale, scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = error / scale
    z[np.isnan(recent.z)] = np.nan
    return Baseline(recent.expected, scale, z)


def _season(state: StreamState, rows: np.ndarray, x: np.ndarray, t: np.ndarray, values: np.ndarray,
            times: np.ndarray, holt: np.ndarray, long_step: np.ndarray, step: np.ndarray, params: DetectorParams,
            history: "History | Tiers | None") -> Baseline:
    """seasonal_baseline for the new samples: each period's profile, its fit, the better of them."""
    out = Baseline(*(np.full(x.shape, np.nan) for _ in range(5)))
    tolerance = 0.5 * long_step
    for p, period in enumerate(params.season_periods_ms):
        by_day_type = params.day_types and period == DAY_MS
        lags = range(1, max(7, params.season_lags) + 1) if by_day_type else range(1, params.season_lags + 1)
        targets = [_same_local_time(t, lag * period, params) for lag in lags]
        older = _older(history, targets, x)
        found = [_lookup(values, times, target, tolerance, older[i]) for i, target in enumerate(targets)]
        days = None
        if by_day_type:
            day_off = _is_day_off(t, params)
            days = ([day_off == _is_day_off(target, params) if lag <= 7 else False
                     for lag, target in zip(lags, targets, strict=True)], [lag <= params.season_lags for lag in lags])
        profile = _profile(found, days, params)
        residual = x - profile
        fit = _baseline(residual, holt, len(HOLTS) + p, params.level_alpha, params.scale_alpha, 0.0, params)
        if params.profile_scale_by_hour:
            fit = _by_hour(state, rows, p, residual, fit, times, targets, tolerance, days, step, params)
        better = np.isfinite(fit.z) & ~(out.scale <= fit.scale)
        out.expected = np.where(better, profile + fit.expected, out.expected)
        out.scale = np.where(better, fit.scale, out.scale)
        out.z = np.where(better, fit.z, out.z)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.plain_z = np.where(better, residual / fit.scale, out.plain_z)
        out.profile = np.where(better, profile, out.profile)
    return out


@dataclass
class Tiers:
    """A CoarseHistory (analytics.buffers) and the rows of it that the series being scored are: looked up where
    its buckets are, without laying out its window (which costs the whole history of every series a pass)."""

    history: object  # analytics.buffers.CoarseHistory (not imported: buffers is the engine's, not the detectors')
    rows: np.ndarray


def _older(history: History | Tiers | None, targets: list[np.ndarray], x: np.ndarray) -> list[np.ndarray | None]:
    """Per target (S, n): what the history expected there (seasonal._history_at), or None without a history."""
    if history is None:
        return [None] * len(targets)
    if isinstance(history, History):
        return [_history_at(history, target, x) for target in targets]
    h = history.history
    h._ensure_rows(int(history.rows.max()) + 1 if history.rows.size else 0)
    stacked = k.history_at(h.fine, h.fine_newest, h.coarse, h.coarse_newest, h.coarse_open, h.coarse_sums,
                           np.ascontiguousarray(history.rows, dtype=np.int64), int(h.bucket_ms),
                           int(h.coarse_ms if h.coarse_capacity else h.bucket_ms),
                           np.ascontiguousarray(np.stack(targets), dtype=np.int64), np.ascontiguousarray(x))
    return list(stacked)


def _profile(found: list[np.ndarray], days: tuple | None, params: DetectorParams) -> np.ndarray:
    """seasonal_expected's median of what each lag found (any day type); with day types (days: per lag, is it of
    the same day type within the week; is it one of the all-days profile's lags) seasonal.day_type_profile."""
    if days is None:
        return median_of_few(found, params.season_min_lags) if len(found) >= params.season_min_lags \
            else np.full(found[0].shape, np.nan)
    same, anyday = days
    own = [np.where(keep, f, np.nan) for f, keep in zip(found, same, strict=True) if keep is not False]
    if len(own) < params.season_min_lags:
        return np.full(found[0].shape, np.nan)
    return day_type_profile(own, [f for f, keep in zip(found, anyday, strict=True) if keep], params)


def _lookup(values: np.ndarray, times: np.ndarray, target: np.ndarray, tolerance: np.ndarray,
            older: np.ndarray | None) -> np.ndarray:
    """The reading nearest to target in the buffer (within tolerance), else the history's (older: what it
    expected at target, None without one)."""
    index = k.nearest(times, target, tolerance)
    found = np.where(index >= 0, np.take_along_axis(values, np.maximum(index, 0), axis=1), np.nan)
    if older is not None:
        found = np.where(index >= 0, found, older)
    return found


def _by_hour(state: StreamState, rows: np.ndarray, p: int, residual: np.ndarray, fit: Baseline, times: np.ndarray,
             targets: list[np.ndarray], tolerance: np.ndarray, days: tuple | None, step: np.ndarray,
             params: DetectorParams) -> Baseline:
    """seasonal._scale_by_time_of_day: the fit's scale never below its usual error at this hour of earlier
    periods, read from the ring of its past errors beside the buffer."""
    error = np.abs(residual - fit.expected)
    n_new, width_all = residual.shape[1], times.shape[1]
    ring = state.errors[p]
    if ring is not None and ring.shape[1] != width_all:
        # The buffer's size changed (a growing array, another CITY_ANALYTICS_BUFFER_SAMPLES): its newest positions.
        keep = min(ring.shape[1], width_all)
        relaid = np.full((ring.shape[0], width_all), np.nan, dtype=np.float32)
        relaid[:, width_all - keep:] = ring[:, ring.shape[1] - keep:]
        ring = state.errors[p] = relaid
    if ring is None:
        if not np.isfinite(error).any():
            return fit  # no profile yet: nothing to remember
        ring = state.errors[p] = np.full((state.rows, width_all), np.nan, dtype=np.float32)
    kept = ring[rows]
    kept[:, :-n_new] = kept[:, n_new:]  # the buffer moved on by the new samples
    kept[:, -n_new:] = error
    ring[rows] = kept
    usual = []
    for target in targets:
        index = k.nearest(times, target, tolerance)
        width = np.clip(np.round(params.profile_scale_window_ms / step), 1, width_all)
        local = np.full(target.shape, np.nan)
        for w in np.unique(width[np.isfinite(width)]):
            same = width == w
            local[same] = k.window_mean_at(kept[same].astype(np.float64), index[same], int(w))
        usual.append(local)
    scale = np.fmax(fit.scale, params.mad_to_sigma * _profile(usual, days, params))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(np.isnan(fit.z), np.nan, (residual - fit.expected) / scale)
    return Baseline(fit.expected, scale, z)


def _drift(state: StreamState, rows: np.ndarray, residual: np.ndarray, scale: np.ndarray, holt: np.ndarray,
           params: DetectorParams) -> np.ndarray:
    """drift.drift_evidence from the state: fast and slow levels of the residual, their gap's own baseline, the
    running minimum over drift_hold_samples."""
    fast_a, slow_a = params.drift_fast_alpha, params.drift_slow_alpha
    fast, _, _ = _run_holt(residual, holt, HOLTS.index("drift_fast"), fast_a, fast_a, 0.0, params)
    slow, _, seen = _run_holt(residual, holt, HOLTS.index("drift_slow"), slow_a, slow_a, 0.0, params)
    settled = seen + ~np.isnan(residual) >= 1.0 / slow_a
    gap = np.where(settled, fast - slow, np.nan)
    trend = _baseline(gap, holt, HOLTS.index("drift_trend"), params.drift_scale_alpha, params.drift_scale_alpha,
                      0.0, params).z
    with np.errstate(invalid="ignore", divide="ignore"):
        off = np.nan_to_num(fast / (scale * math.sqrt(fast_a / (2 - fast_a))))
        now = np.nan_to_num(residual / scale)
    trend = np.nan_to_num(trend)
    up = np.minimum(trend, off) * (now >= params.drift_min_z)
    down = np.minimum(-trend, -off) * (now <= -params.drift_min_z)
    evidence = np.maximum(np.maximum(up, down), 0.0)
    width = params.drift_hold_samples
    if width <= 1:
        return evidence
    # A trailing running minimum over `width` samples; before a series' first sample, its first (scipy's
    # "nearest" edge, as drift_evidence has it).
    last = state.arrays["drift_last"][rows]
    first = state.arrays["scored"][rows] == 0
    last[first] = evidence[first, :1]
    joined = np.concatenate([last[:, -(width - 1):], evidence], axis=1)
    out = joined[:, width - 1:].copy()
    for back in range(1, width):
        np.minimum(out, joined[:, width - 1 - back:joined.shape[1] - back], out=out)
    state.arrays["drift_last"][rows] = joined[:, -(width - 1):]
    return out


__all__ = ["DETECTORS", "StreamState", "Tiers", "recent_new", "score_new"]
