"""Anomaly detectors over a (series x time) array, all series at once.

Every function takes `values` of shape (S, T) (a 1-D array is one series),
float, with NaN where a series has no reading, newest sample last. Scores are
causal: the output at column t depends on columns <= t only. Recursive
statistics (EWMA, CUSUM) step over time with each step vectorised over all
series; everything else is whole-array numpy. No loop per series or per point.

Detectors return either a robust z (signed, in robust sigmas, NaN where the
baseline is not yet trusted) or a score in [0, 1] (0 where unknown).
`calibrate` turns a z into a score with the same meaning on every series.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from analytics import compiled
from analytics.config import DAY_MS, DEFAULT_PARAMS, DetectorParams, Limit


class DetectorInputError(ValueError):
    """The arrays given to a detector are not what it needs."""


# ---------------------------------------------------------------- inputs


def as_matrix(values: np.ndarray) -> np.ndarray:
    """`values` as a float64 (S, T) array; NaN marks a missing reading.

    Raises DetectorInputError for more than 2 dimensions, non-numeric data or
    infinities (a reading is a finite number or missing, never infinite).
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DetectorInputError(f"values must be numbers: {exc}") from exc
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise DetectorInputError(f"values must be (series, time), got {x.ndim} dimensions")
    if np.isinf(x).any():
        raise DetectorInputError("values must be finite or NaN, not infinite")
    return x


def as_times(times: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Timestamps (ms) as int64 of `shape`: one row per series, or one shared (T,) row.

    They must not decrease along time; raises DetectorInputError otherwise.
    """
    t = np.asarray(times)
    if t.dtype.kind not in "iuf":
        raise DetectorInputError("times must be integer milliseconds")
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        raise DetectorInputError("times must be finite")
    t = t.astype(np.int64)
    if t.ndim == 1 and t.shape == shape[1:]:
        t = np.broadcast_to(t, shape)
    if t.shape != shape:
        raise DetectorInputError(f"times have shape {t.shape}, values {shape}")
    if shape[1] > 1 and (np.diff(t, axis=1) < 0).any():
        raise DetectorInputError("times must not decrease along a series")
    return t


def calibrate(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """A robust z (any sign) to a score in [0, 1]: logistic in |z|, 0.5 at `z_mid` sigmas; NaN -> 0.

    Because z is in units of each series' own robust scale, one score
    threshold is the same number of sigmas on every series.
    """
    z = np.abs(np.asarray(z, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        score = 1.0 / (1.0 + np.exp(-(z - params.z_mid) / params.z_width))
    # Shift so z = 0 scores exactly 0 and the range stays [0, 1].
    at_zero = 1.0 / (1.0 + np.exp(params.z_mid / params.z_width))
    score = (score - at_zero) / (1.0 - at_zero)
    return np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0)


def nanmedian_first_axis(stack: np.ndarray) -> np.ndarray:
    """np.nanmedian(stack, axis=0) without its slow path for short axes; NaN where all are NaN.

    np.sort puts NaN last, so the median of the n finite values sits at
    positions (n - 1) // 2 and n // 2.
    """
    stack = np.asarray(stack, dtype=np.float64)
    n = (~np.isnan(stack)).sum(axis=0)
    ordered = np.sort(stack, axis=0)
    low = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(ordered, np.maximum(n // 2, 0)[None], axis=0)[0]
    return np.where(n > 0, (low + high) / 2.0, np.nan)


def median_of_few(arrays: list[np.ndarray], min_count: int = 1) -> np.ndarray:
    """Element-wise NaN-ignoring median of a few same-shape arrays; NaN where fewer than min_count are finite.

    Up to three arrays the median is computed without stacking them (sum less
    the extremes), which keeps memory traffic to a few passes.
    """
    if len(arrays) > 3:
        median = nanmedian_first_axis(np.stack(arrays))
        count = sum((~np.isnan(a)).astype(np.int8) for a in arrays)
        return np.where(count >= min_count, median, np.nan)
    low = high = arrays[0]
    total = np.nan_to_num(arrays[0])
    count = (~np.isnan(arrays[0])).astype(np.int8)
    for array in arrays[1:]:
        low = np.fmin(low, array)
        high = np.fmax(high, array)
        total = total + np.nan_to_num(array)
        count = count + ~np.isnan(array)
    middle = np.where(count == 3, total - low - high, (low + high) / 2.0)
    return np.where((count >= min_count) & (count > 0), middle, np.nan)

def _scale_floor(level: np.ndarray, params: DetectorParams) -> np.ndarray:
    return params.rel_scale_floor * np.abs(level) + params.abs_scale_floor


# ---------------------------------------------------------------- robust baseline


@dataclass
class Baseline:
    """Per sample: the value expected before it arrived, the robust scale, and the robust z."""

    expected: np.ndarray
    scale: np.ndarray
    z: np.ndarray
    # The daily/weekly profile only: z against the plain profile, without the
    # running bias learnt on top of it (seasonal_baseline; None elsewhere).
    plain_z: np.ndarray | None = None
    # The daily/weekly profile only: the plain profile itself, so expected - profile is the running bias.
    profile: np.ndarray | None = None


@dataclass
class Anchor:
    """Where a series normally is, in a form that can be frozen when an incident opens.

    (S, T) arrays, NaN where no daily/weekly profile exists: the plain
    profile, the running bias learnt on top of it, and the robust scale of
    the readings around the two. An open incident holds while the readings
    stay away from the profile plus the bias frozen at its opening: the
    running bias learns a lasting fault (a leak, a tampered meter) as normal
    within an hour or two, but the fault has not ended until the readings are
    back where they were before it (rules.Hysteresis).
    """

    profile: np.ndarray
    bias: np.ndarray
    scale: np.ndarray

    def departure(self, values: np.ndarray, bias: np.ndarray, scale: np.ndarray, t: int) -> np.ndarray:
        """(x - (profile + bias)) / scale at column t for a frozen (bias, scale) per series; NaN where unknown."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (values[:, t] - self.profile[:, t] - bias) / scale


@dataclass
class History:
    """Coarse older readings per series (e.g. per-minute means over a week), for the daily/weekly profile.

    values, times: (S, H), oldest first, NaN (time 0) where empty; the S rows
    are the same series as the values being scored. A profile lookup that
    finds no reading of its own within tolerance takes the history's entry
    nearest to the wanted time, if within `tolerance_ms`.
    """

    values: np.ndarray
    times: np.ndarray
    tolerance_ms: float

    def rows(self, rows: slice) -> "History":
        return History(self.values[rows], self.times[rows], self.tolerance_ms)


def robust_baseline(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS,
                    alpha: float | None = None, trend: bool = True) -> Baseline:
    """Robust running level and scale of each series, and the z of each new sample against them.

    Level: Holt's linear exponential smoothing (level and trend, so a daily
    ramp is followed without lag) whose update is Huber-clipped at
    `huber_clip` scales, so an outlier moves it by at most
    alpha * clip * scale. Scale: an EWMA of
    the (equally clipped) absolute deviation times sqrt(pi/2), a running
    counterpart of the mean absolute deviation. Until `warmup` samples have
    been seen both are plain running means and z is NaN. NaN readings are
    skipped (the state carries over the gap).

    Scale floor: never below half the smallest step the series has made
    (its resolution: one quantum up or down is not unusual) nor
    `rel_scale_floor` of its level, so a constant series does not make
    every change infinitely unusual.

    Parameters: values (S, T); params; alpha overrides both smoothing
    factors; trend=False keeps the level flat (for residuals, which have none).
    Returns: Baseline with (S, T) arrays. z[t] compares x[t] with the state
    built from x[:t] only (causal).

    References: Huber (1964), "Robust estimation of a location parameter";
    Hunter (1986), "The exponentially weighted moving average", J. Qual. Tech.;
    Holt (1957, reprinted 2004), "Forecasting seasonals and trends by
    exponentially weighted moving averages", Int. J. Forecasting 20.
    """
    x = as_matrix(values)
    a_level = params.level_alpha if alpha is None else alpha
    a_scale = params.scale_alpha if alpha is None else alpha
    if not 0 < a_level <= 1 or not 0 < a_scale <= 1:
        raise DetectorInputError("alpha must be in (0, 1]")
    expected, scale = _holt(x, a_level, a_scale, trend, params)
    seen_before = np.cumsum(~np.isnan(x), axis=1) - ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        z = np.where(seen_before >= params.warmup, (x - expected) / scale, np.nan)
    return Baseline(expected, scale, z)


def _holt(x: np.ndarray, a_level: float, a_scale: float, trend: bool,
          params: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """robust_baseline's recursion, compiled where numba is, else in numpy loops: (expected, scale), (S, T)."""
    if not compiled.active():
        return _numpy_holt(x, a_level, a_scale, trend, params)
    x = np.ascontiguousarray(x, dtype=np.float64)
    expected, scale = np.empty(x.shape), np.empty(x.shape)
    compiled.holt(x, expected, scale, float(a_level), float(a_scale),
                  float(a_level * params.trend_beta if trend else 0.0), int(params.warmup),
                  float(params.huber_clip), float(params.mad_to_sigma), float(params.rel_scale_floor),
                  float(params.abs_scale_floor))
    return expected, scale


def _numpy_holt(x: np.ndarray, a_level: float, a_scale: float, trend: bool,
                params: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """robust_baseline's recursion stepped over time in numpy, all series at once: (expected, scale), (S, T)."""
    n_series, n_times = x.shape
    clip = params.huber_clip
    # Time-major copies: each step then reads and writes contiguous memory.
    x_by_time = np.ascontiguousarray(x.T)
    expected = np.empty((n_times, n_series))
    scale = np.empty((n_times, n_series))
    level = np.zeros(n_series)
    slope = np.zeros(n_series)
    deviation = np.zeros(n_series)
    count = np.zeros(n_series)
    quantum = np.zeros(n_series)  # smallest non-zero step so far (0: none yet)
    last = np.full(n_series, np.nan)
    a_trend = a_level * params.trend_beta if trend else 0.0
    # Once every series has seen `settled` readings, the start-up branches
    # (plain means, unclipped updates) can no longer apply: the steady loop
    # below does the same arithmetic with fewer array operations.
    settled = max(params.warmup, math.ceil(1.0 / a_level), math.ceil(1.0 / a_scale))
    t = 0
    while t < n_times and n_series and count.min() < settled:
        xt = x_by_time[t]
        valid = ~np.isnan(xt)
        seen = count > 0
        warm = count >= params.warmup
        forecast = level + slope
        s = np.maximum(np.maximum(deviation * params.mad_to_sigma, _scale_floor(forecast, params)), 0.5 * quantum)
        expected[t] = np.where(seen, forecast, np.nan)
        scale[t] = np.where(seen, s, np.nan)
        residual = np.where(valid, xt - forecast, 0.0)
        # Start-up: plain running means (alpha = 1/n); afterwards clipped EWMAs.
        step_level = np.maximum(a_level, 1.0 / (count + 1.0))
        step_scale = np.maximum(a_scale, 1.0 / np.maximum(count, 1.0))
        limit = clip * s
        clipped = np.where(warm, np.clip(residual, -limit, limit), residual)
        # Holt's linear method in error-correction form; a missing reading freezes the state.
        level = np.where(valid, np.where(seen, forecast + step_level * clipped, xt), level)
        slope = np.where(valid & warm, slope + a_trend * clipped, slope)
        spread = np.where(warm, np.minimum(np.abs(residual), limit), np.abs(residual))
        deviation = np.where(valid & seen, deviation + step_scale * (spread - deviation), deviation)
        step = np.abs(xt - last)
        new_quantum = valid & (step > 0) & ((quantum == 0) | (step < quantum))
        quantum = np.where(new_quantum, step, quantum)
        last = np.where(valid, xt, last)
        count = count + valid
        t += 1
    if t < n_times:
        _steady_holt(x_by_time[t:], expected[t:], scale[t:], level, slope, deviation, quantum, last,
                     a_level, a_scale, a_trend, params)
    expected = expected.T
    scale = scale.T
    return expected, scale


def _steady_holt(x_by_time: np.ndarray, expected: np.ndarray, scale: np.ndarray, level: np.ndarray,
                 slope: np.ndarray, deviation: np.ndarray, quantum: np.ndarray, last: np.ndarray,
                 a_level: float, a_scale: float, a_trend: float, params: DetectorParams) -> None:
    """robust_baseline's loop once every series is past its start-up: fills expected and scale (time-major).

    The same arithmetic as the start-up loop with seen and warm true and the
    steps at their alphas; a missing reading (NaN) propagates through the
    update and is masked out when the state is written back.
    """
    clip, m = params.huber_clip, params.mad_to_sigma
    with np.errstate(invalid="ignore"):
        for t in range(x_by_time.shape[0]):
            xt = x_by_time[t]
            valid = xt == xt  # not NaN
            forecast = level + slope
            s = np.maximum(np.maximum(deviation * m, _scale_floor(forecast, params)), 0.5 * quantum)
            expected[t] = forecast
            scale[t] = s
            residual = xt - forecast
            limit = clip * s
            clipped = np.clip(residual, -limit, limit)
            np.copyto(level, forecast + a_level * clipped, where=valid)
            if a_trend:
                np.copyto(slope, slope + a_trend * clipped, where=valid)
            spread = np.minimum(np.abs(residual), limit)
            np.copyto(deviation, deviation + a_scale * (spread - deviation), where=valid)
            step = np.abs(xt - last)
            np.copyto(quantum, step, where=(step > 0) & ((quantum == 0) | (step < quantum)))
            np.copyto(last, xt, where=valid)


def cusum_evidence(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Two-sided CUSUM of a robust z as evidence in sigma units: the larger side of cusum_sides."""
    upper, lower = cusum_sides(z, params)
    return np.maximum(upper, lower)


def cusum_sides(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided CUSUM of a robust z, as evidence in sigma units (z_mid at the decision interval h).

    S+ = max(0, S+ + z - k) and S- = max(0, S- - z - k); each (upward and
    downward evidence, returned in that order) divided by h and times
    z_mid, so `calibrate` scores S = h as 0.5. z is clipped at h / 2 so a
    single outlier cannot fire the CUSUM on its own (the level detector
    scores that). A NaN z counts as 0 (no evidence either way).
    Each step is scaled by sqrt((1 - rho) / (1 + rho)), rho the running
    lag-1 autocorrelation of z: the variance of a sum of AR(1) terms, so
    autocorrelated forecast errors do not look like a shift. Both sums are
    capped at `cusum_cap` * h: past that the evidence is certain anyway, and
    an uncapped sum built up over a long fault would keep alarming for as
    many samples after the fault ended (it decays by k per sample).

    Reference: Page (1954), "Continuous inspection schemes", Biometrika 41.
    """
    z = as_matrix(z)
    k, h = params.cusum_k, params.cusum_h
    if compiled.active():
        z = np.ascontiguousarray(z, dtype=np.float64)
        upper_out, lower_out = np.empty(z.shape), np.empty(z.shape)
        compiled.cusum(z, upper_out, lower_out, float(k), float(h), float(params.cusum_rho_alpha),
                       float(params.z_mid / h), float(params.cusum_cap * h))
        return upper_out, lower_out
    n_series = z.shape[0]
    upper = np.zeros(n_series)
    lower = np.zeros(n_series)
    lag_product = np.zeros(n_series)
    energy = np.ones(n_series)
    previous = np.zeros(n_series)
    a = params.cusum_rho_alpha
    cap = params.cusum_cap * h
    out_upper = np.empty((z.shape[1], n_series))  # time-major: contiguous steps
    out_lower = np.empty((z.shape[1], n_series))
    bounded = np.ascontiguousarray(np.clip(np.nan_to_num(z, nan=0.0), -h / 2, h / 2).T)
    for t in range(z.shape[1]):
        zt = bounded[t]
        # Lag-1 autocorrelation of z, so a smooth series (whose forecast errors
        # come in runs) needs as much evidence as white noise would.
        lag_product += a * (zt * previous - lag_product)
        energy += a * (zt * zt - energy)
        rho = np.clip(lag_product / np.maximum(energy, 1e-12), 0.0, 0.95)
        step = zt * np.sqrt((1.0 - rho) / (1.0 + rho))
        previous = zt
        # A missing z is 0 here and lets the sums decay by k: a gap is no evidence of a shift.
        np.clip(upper + (step - k), 0.0, cap, out=out_upper[t])
        np.clip(lower - (step + k), 0.0, cap, out=out_lower[t])
        upper, lower = out_upper[t], out_lower[t]
    unit = params.z_mid / h
    return out_upper.T * unit, out_lower.T * unit


def cusum_score(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """cusum_evidence as a score in [0, 1]."""
    return calibrate(cusum_evidence(z, params), params)


# ---------------------------------------------------------------- seasonal


def _rowwise_searchsorted(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the last sample at or before each target, per row (-1 if none); targets (S, any).

    One searchsorted over all rows: each row is shifted into its own range so
    the flattened times stay sorted.
    """
    n_series, n_times = times.shape
    base = times.min() if times.size else 0
    span = int(times.max() - base) + 1 if times.size else 1
    offsets = (np.arange(n_series, dtype=np.int64) * (3 * span + 1))[:, None]
    flat = (times - base + span + offsets).ravel()
    wanted = (np.clip(targets - base + span, 0, 3 * span) + offsets).ravel()
    found = np.searchsorted(flat, wanted, side="right").reshape(targets.shape) - 1
    found -= (np.arange(n_series) * n_times)[:, None]
    return np.where(found >= 0, found, -1)


def typical_interval_ms(times: np.ndarray) -> float:
    """The median over series of each one's median sampling interval (ms); NaN where none has two samples."""
    t = np.asarray(times)
    interval = median_interval_ms(t[None] if t.ndim == 1 else t)
    return float(np.nanmedian(interval)) if np.isfinite(interval).any() else math.nan


def median_interval_ms(times: np.ndarray) -> np.ndarray:
    """Each series' median sampling interval (ms), NaN where fewer than two samples."""
    if times.shape[1] < 2:
        return np.full(times.shape[0], np.nan)
    steps = np.diff(times, axis=1).astype(np.float64)
    steps[steps <= 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(steps, axis=1)


def seasonal_expected(values: np.ndarray, times: np.ndarray, period_ms: int,
                      params: DetectorParams = DEFAULT_PARAMS, history: History | None = None) -> np.ndarray:
    """The value expected at each sample from the same phase of previous periods.

    For lags k = 1..season_lags, take the reading nearest to t - k * period
    (within half the series' median interval, so always before t); the expected
    value is the median of those found, or NaN when fewer than
    `season_min_lags` exist. Timestamps may be irregular and differ per
    series. Tanjungpinang keeps UTC+7 all year (no daylight saving), so a lag
    of whole days is the same local time of day.

    With `params.day_types` the daily profile compares like with like: a
    working day with the working days, a weekend day with the weekend days
    (local time, params.utc_offset_h) of the past week.

    `history`: where a series' own buffer has no reading at a lag, its
    coarse history is looked up instead (a 4-hour buffer of 10-second
    readings plus a week of per-minute means).
    """
    x = as_matrix(values)
    # One time row for all series: one search instead of one per row.
    shared = np.ndim(times) == 1 and history is None
    t = as_times(times, x.shape)
    if period_ms <= 0:
        raise DetectorInputError("period_ms must be positive")
    if x.shape[1] == 0 or x.shape[0] == 0:
        return np.full(x.shape, np.nan)
    # A lagged reading counts if it is within half a sampling interval of t - k * period.
    tolerance = 0.5 * (median_interval_ms(t[:1])[0] if shared else median_interval_ms(t)[:, None])
    lagged = []
    last = x.shape[1] - 1
    by_day_type = params.day_types and period_ms == DAY_MS
    lags = range(1, 8) if by_day_type else range(1, params.season_lags + 1)
    weekend = _is_weekend(t, params.utc_offset_h) if by_day_type else None
    for lag in lags:
        if shared:
            target = t[0] - lag * period_ms
            before = np.searchsorted(t[0], target, side="right") - 1
            after = np.minimum(before + 1, last)
            nearest = np.where((before < 0) | (t[0, after] - target < target - t[0, np.maximum(before, 0)]),
                               after, before)
            close = np.abs(t[0, nearest] - target) <= tolerance
            if by_day_type:
                close &= weekend[0] == _is_weekend(target, params.utc_offset_h)
            if close.any():
                lagged.append(np.where(close, x[:, nearest], np.nan))
            continue
        target = t - lag * period_ms
        before = _rowwise_searchsorted(t, target)
        after = np.minimum(before + 1, last)
        t_before = np.take_along_axis(t, np.maximum(before, 0), axis=1)
        t_after = np.take_along_axis(t, after, axis=1)
        nearest = np.where((before < 0) | (t_after - target < target - t_before), after, before)
        close = np.abs(np.take_along_axis(t, nearest, axis=1) - target) <= tolerance
        if by_day_type:
            close &= weekend == _is_weekend(target, params.utc_offset_h)
        found = np.where(close, np.take_along_axis(x, nearest, axis=1), np.nan)
        if history is not None:
            older = _history_at(history, target, x)
            if by_day_type:
                older = np.where(weekend == _is_weekend(target, params.utc_offset_h), older, np.nan)
            found = np.where(close, found, older)
        if not np.isnan(found).all():
            lagged.append(found)
    if len(lagged) < params.season_min_lags:
        return np.full(x.shape, np.nan)
    return median_of_few(lagged, params.season_min_lags)


def _history_at(history: History, target: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per (series, sample): what the history expected at target, NaN if it has no entry within tolerance.

    A bucket mean blurs a step inside its bucket (a switch at 06:33:20 makes
    the 06:33 mean half-way), so the entry nearest to target and its two
    neighbours give a range, and a reading x inside it is as expected as
    any of them: the expectation is x clipped to that range (a slack of
    one bucket either side, a minute at the default).
    """
    h_times = history.times
    if h_times.shape[1] == 0:
        return np.full(target.shape, np.nan)
    last = h_times.shape[1] - 1
    before = _rowwise_searchsorted(h_times, target)
    after = np.minimum(before + 1, last)
    t_before = np.take_along_axis(h_times, np.maximum(before, 0), axis=1)
    t_after = np.take_along_axis(h_times, after, axis=1)
    nearest = np.where((before < 0) | (t_after - target < target - t_before), after, before)
    close = np.abs(np.take_along_axis(h_times, nearest, axis=1) - target) <= history.tolerance_ms
    low = high = np.take_along_axis(history.values, nearest, axis=1)
    for neighbour in (np.maximum(nearest - 1, 0), np.minimum(nearest + 1, last)):
        near = np.abs(np.take_along_axis(h_times, neighbour, axis=1) - target) <= 2 * history.tolerance_ms
        value = np.where(near, np.take_along_axis(history.values, neighbour, axis=1), np.nan)
        low, high = np.fmin(low, value), np.fmax(high, value)
    return np.where(close & ~np.isnan(low), np.clip(x, low, high), np.nan)


def _is_weekend(t_ms: np.ndarray, utc_offset_h: int) -> np.ndarray:
    # 1970-01-01 was a Thursday: +3 makes Monday 0, so Saturday and Sunday are 5 and 6.
    return ((t_ms + utc_offset_h * 3_600_000) // DAY_MS + 3) % 7 >= 5


def seasonal_baseline(values: np.ndarray, times: np.ndarray, params: DetectorParams = DEFAULT_PARAMS,
                      history: History | None = None) -> Baseline:
    """The daily and weekly profiles as a forecaster: expected value, robust scale and z per sample.

    The residual x - seasonal_expected is itself given a robust (flat)
    baseline, so a profile that is biased (a busier week) does not alarm,
    only a departure from how well the profile usually predicts. Where both
    profiles exist, the one with the smaller running scale (the better
    predictor so far) is used. NaN where no profile exists yet.
    `history`: coarse older readings per series (see History).
    """
    x = as_matrix(values)
    t = as_times(times, x.shape)
    out = Baseline(*(np.full(x.shape, np.nan) for _ in range(5)))
    start = t[:, 0].min() if x.size else 0
    if history is not None and x.size and not np.isnan(history.values).all():
        start = min(start, history.times[~np.isnan(history.values)].min())
    span = int(t[:, -1].max() - start) if x.size else 0
    step_ms = typical_interval_ms(times) if params.profile_scale_by_hour else math.nan
    for period in params.season_periods_ms:
        if span < params.season_min_lags * period:
            continue  # not enough history for this profile anywhere
        profile = seasonal_expected(x, times, period, params, history)
        fit = robust_baseline(x - profile, params, trend=False)
        if params.profile_scale_by_hour:
            fit = _scale_by_time_of_day(x - profile, fit, times, period, step_ms, params)
        better = np.isfinite(fit.z) & ~(out.scale <= fit.scale)
        out.expected = np.where(better, profile + fit.expected, out.expected)
        out.scale = np.where(better, fit.scale, out.scale)
        out.z = np.where(better, fit.z, out.z)
        with np.errstate(invalid="ignore"):
            out.plain_z = np.where(better, (x - profile) / fit.scale, out.plain_z)
        out.profile = np.where(better, profile, out.profile)
    return out


def _scale_by_time_of_day(residual: np.ndarray, fit: Baseline, times: np.ndarray, period_ms: int,
                          step_ms: float, params: DetectorParams) -> Baseline:
    """The profile fit with its scale never below the profile's usual error at this time of the period.

    The running scale is what the last hour or so made it: after a quiet
    night (no cars, lights off) it is tiny, and the morning, when the
    profile always predicts worse, would look anomalous every day (the
    running scale grows only a few percent a sample, too slow for a morning
    of a dozen 5-minute readings). The mean absolute error of the profile
    fit within `profile_scale_window_ms` around the same time of the earlier
    periods (their median, so one bad day does not count) says how well it
    usually does at this hour. Only earlier periods are read: causal.
    step_ms: the series' typical sampling interval (typical_interval_ms).
    """
    if not step_ms > 0:
        return fit
    width = int(min(max(1, round(params.profile_scale_window_ms / step_ms)), residual.shape[1]))
    error = np.abs(residual - fit.expected)
    known = ~np.isnan(error)
    total = uniform_filter1d(np.where(known, error, 0.0), size=width, axis=1, mode="constant")
    count = uniform_filter1d(known.astype(np.float64), size=width, axis=1, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(count > 0, total / count, np.nan)
    usual = params.mad_to_sigma * seasonal_expected(local, times, period_ms, params)
    scale = np.fmax(fit.scale, usual)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(np.isnan(fit.z), np.nan, (residual - fit.expected) / scale)
    return Baseline(fit.expected, scale, z)


def seasonal_z(values: np.ndarray, times: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Robust z against the daily and weekly profiles (seasonal_baseline's z)."""
    return seasonal_baseline(values, times, params).z


# ---------------------------------------------------------------- flatline


def flatline_nats(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Surprise (nats) of the current run of identical readings, given the series' past.

    p0 = (repeats + 1) / (steps + 2) counted before the run started; a run
    of r repeats scores r * ln(1 / p0). Missing readings neither extend nor
    break a run. Zero until `warmup` steps precede the run, while the run
    is shorter than `flatline_min_run`, and for a run at the lowest value
    the series had before it (idle, not stuck).
    """
    x = as_matrix(values)
    n_series, n_times = x.shape
    out = np.zeros(x.shape)
    if n_times == 0:
        return out
    # Only rows that repeat a reading at least flatline_min_run times can have
    # a run that long; most continuous series never repeat and cost one pass.
    candidates = np.flatnonzero(_repeat_count(x) >= params.flatline_min_run)
    if candidates.size == n_series:
        return _flatline_rows(x, params)
    if candidates.size:
        out[candidates] = _flatline_rows(x[candidates], params)
    return out


def _repeat_count(x: np.ndarray) -> np.ndarray:
    """Per row, how many readings equal the previous reading (missing ones skipped): an upper bound of any run."""
    if not np.isnan(x).any():
        return (x[:, 1:] == x[:, :-1]).sum(axis=1)
    index = np.arange(x.shape[1])
    last_valid = np.maximum.accumulate(np.where(np.isnan(x), -1, index), axis=1)
    filled = np.take_along_axis(x, np.maximum(last_valid, 0), axis=1)  # forward-filled
    return (~np.isnan(x[:, 1:]) & (x[:, 1:] == filled[:, :-1])).sum(axis=1)


def _flatline_rows(x: np.ndarray, params: DetectorParams) -> np.ndarray:
    n_times = x.shape[1]
    index = np.arange(n_times)
    valid = ~np.isnan(x)
    last_valid = np.maximum.accumulate(np.where(valid, index, -1), axis=1)
    previous_valid = np.full(x.shape, -1)
    previous_valid[:, 1:] = last_valid[:, :-1]
    previous = np.take_along_axis(x, np.maximum(previous_valid, 0), axis=1)
    has_previous = valid & (previous_valid >= 0)
    repeat = has_previous & (x == previous)
    change = has_previous & (x != previous)
    repeats = np.cumsum(repeat, axis=1)
    steps = np.cumsum(repeat | change, axis=1)
    run_start = np.maximum.accumulate(np.where(change, index, 0), axis=1)
    repeats_before = np.take_along_axis(repeats, run_start, axis=1)
    steps_before = np.take_along_axis(steps, run_start, axis=1)
    run = repeats - repeats_before
    p_repeat = (repeats_before + 1.0) / (steps_before + 2.0)
    nats = run * -np.log(p_repeat)
    # A run at the lowest value the series has ever had (no flow, no cars at
    # night) is idle, not stuck: the two cannot be told apart from the data.
    floor = np.fmin.accumulate(x, axis=1)
    floor_before = np.take_along_axis(floor, np.maximum(run_start - 1, 0), axis=1)
    at_floor = np.take_along_axis(x, last_valid.clip(0), axis=1) <= floor_before
    ready = (steps_before >= params.warmup) & (run >= params.flatline_min_run) & ~at_floor
    return np.where(ready, nats, 0.0)


def flatline_evidence(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """flatline_nats in sigma units: `flatline_nats` nats is z_mid (a score of 0.5)."""
    return flatline_nats(values, params) * (params.z_mid / params.flatline_nats)


def flatline_score(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Stuck-sensor score in [0, 1]."""
    return calibrate(flatline_evidence(values, params), params)


# ---------------------------------------------------------------- rules


def limit_score(values: np.ndarray, limit: Limit) -> np.ndarray:
    """1 where a reading is outside the limit's [low, high], else 0 (missing readings score 0)."""
    x = as_matrix(values)
    with np.errstate(invalid="ignore"):
        outside = np.zeros(x.shape, dtype=bool)
        if limit.low is not None:
            outside |= x < limit.low
        if limit.high is not None:
            outside |= x > limit.high
    return outside.astype(np.float64)


def silence_score(last_seen_ms: np.ndarray, now_ms: int, interval_ms: np.ndarray,
                  params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Per series, how silent it is: 0 up to `silence_factor` intervals without data, 1 at twice that.

    A device that never reported (NaN last_seen) scores 0: it is not silent, it is new.
    """
    last = np.asarray(last_seen_ms, dtype=np.float64)
    interval = np.maximum(np.asarray(interval_ms, dtype=np.float64), 1.0)
    gap = (now_ms - last) / interval
    factor = params.silence_factor
    score = np.clip((gap - factor) / factor, 0.0, 1.0)
    return np.nan_to_num(score, nan=0.0)


# ---------------------------------------------------------------- peers


def peer_residual(values: np.ndarray, groups: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Each series' relative departure from the median of its group (e.g. the meters of one district).

    (x - median) / |median| at each time.
    NaN where fewer than `peer_min_peers` series of the group have a reading.
    The loop is over groups (a handful of districts), not series.
    """
    x = as_matrix(values)
    labels = np.asarray(groups)
    if labels.shape != (x.shape[0],):
        raise DetectorInputError(f"groups must have one label per series ({x.shape[0]}), got {labels.shape}")
    out = np.full(x.shape, np.nan)
    for group in np.unique(labels):
        rows = labels == group
        if rows.sum() < params.peer_min_peers:
            continue
        block = x[rows]
        median = nanmedian_first_axis(block)
        enough = (~np.isnan(block)).sum(axis=0) >= params.peer_min_peers
        # Relative departure: meters of different sizes on the same curve
        # keep a constant ratio to their median, not a constant difference.
        with np.errstate(divide="ignore", invalid="ignore"):
            departure = (block - median) / np.maximum(np.abs(median), params.abs_scale_floor)
        out[rows] = np.where(enough, departure, np.nan)
    return out


def peer_z(values: np.ndarray, groups: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Robust z of each series' departure from its peers, against its own usual departure.

    A meter that always reads 10 % above its neighbours is not unusual; one
    that starts drifting away from them is (tampering, a failing meter).
    """
    return robust_baseline(peer_residual(values, groups, params), params, alpha=params.peer_alpha, trend=False).z


# ---------------------------------------------------------------- night flow


def night_minimum(values: np.ndarray, times: np.ndarray, utc_offset_h: int,
                  params: DetectorParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum flow of each night window (local hours night_start_h..night_end_h).

    times: one shared (T,) row in ms. Returns (night_day (N,) local day
    numbers, minima (S, N), ready_ms (N,) the UTC time each window closes,
    when its minimum becomes known). The loop runs over nights, not samples.
    """
    x = as_matrix(values)
    t = np.asarray(times, dtype=np.int64)
    if t.shape != (x.shape[1],):
        raise DetectorInputError("night_minimum needs one shared (T,) row of times")
    day_ms = 24 * 3600 * 1000
    local = t + utc_offset_h * 3600 * 1000
    day = local // day_ms
    hour = (local % day_ms) / 3_600_000.0
    in_night = (hour >= params.night_start_h) & (hour < params.night_end_h)
    nights = np.unique(day[in_night])
    minima = np.full((x.shape[0], nights.size), np.nan)
    for i, night in enumerate(nights):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            minima[:, i] = np.nanmin(x[:, in_night & (day == night)], axis=1)
    ready = nights * day_ms + params.night_end_h * 3_600_000 - utc_offset_h * 3_600_000
    return nights, minima, ready


def night_flow_score(minima: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Leak score per (series, night): the rise of the night minimum over the median of earlier nights.

    score = clip(rise / night_rise_rel, 0, 1), rise relative to that median;
    0 until two earlier nights exist. Minimum night flow is the standard
    leakage indicator of the IWA water-loss methodology (Lambert, 1994).
    """
    m = as_matrix(minima)
    score = np.zeros(m.shape)
    for night in range(2, m.shape[1]):
        history = m[:, max(0, night - params.night_history):night]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            base = np.nanmedian(history, axis=1)
        rise = (m[:, night] - base) / np.maximum(np.abs(base), 1e-6)
        score[:, night] = np.nan_to_num(np.clip(rise / params.night_rise_rel, 0.0, 1.0), nan=0.0)
    return score


# ---------------------------------------------------------------- combined


def drift_evidence(residual: np.ndarray, scale: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """How unusually a series is trending away from its daily profile, in robust sigmas (>= 0; 0 until known).

    residual (S, T): the readings less their plain daily/weekly profile;
    scale: the robust scale of the readings around the profile. A fast and
    a slow robust level of the residual (drift_fast_alpha,
    drift_slow_alpha; Huber-clipped, so a spike barely moves them) differ by
    about the slope times the difference of their memories while the series
    drifts; that gap is compared with its own usual size (a robust baseline
    with a memory of about two days of samples, drift_scale_alpha), so a
    series whose day-to-day bias wanders a lot needs a larger trend. The
    evidence is the smaller of that z and the fast level off the profile
    in units of its own standard error (scale * sqrt(alpha / (2 - alpha))),
    in the same direction, while the reading itself is at least
    drift_min_z scales off that way (when a drift is repaired the readings
    return to the profile at once, while the clipped levels still remember
    it: no new anomaly), held over drift_hold_samples readings (a running
    minimum: one odd reading is no drift). A slow drift (a fouling sensor,
    a meter losing calibration) that the running level learns as it goes is
    caught while it drifts, not when it is repaired. Causal, all series at
    once.
    """
    r = as_matrix(residual)
    fast = _holt(r, params.drift_fast_alpha, params.drift_fast_alpha, False, params)[0]  # levels only: no z
    slow = _holt(r, params.drift_slow_alpha, params.drift_slow_alpha, False, params)[0]
    # The gap's own baseline starts once the slow level has settled (before, the gap is its start-up transient).
    settled = np.cumsum(~np.isnan(r), axis=1) >= 1.0 / params.drift_slow_alpha
    trend = robust_baseline(np.where(settled, fast - slow, np.nan), params, alpha=params.drift_scale_alpha,
                            trend=False).z
    with np.errstate(invalid="ignore", divide="ignore"):
        # The fast level in units of its own standard error (an EWMA of ~30 samples averages the noise away).
        off = np.nan_to_num(fast / (scale * math.sqrt(params.drift_fast_alpha / (2 - params.drift_fast_alpha))))
        now = np.nan_to_num(r / scale)
    trend = np.nan_to_num(trend)
    # And the reading itself must be off the profile that way (by drift_min_z): when a drift is
    # repaired the readings are back at once, while the Huber-clipped fast level takes a while.
    up = np.minimum(trend, off) * (now >= params.drift_min_z)
    down = np.minimum(-trend, -off) * (now <= -params.drift_min_z)
    evidence = np.maximum(np.maximum(up, down), 0.0)
    # A drift is slow: its evidence must hold over the last drift_hold_samples readings (a running
    # minimum), so one odd reading against a profile that is briefly off is no drift.
    width = min(params.drift_hold_samples, evidence.shape[1]) if evidence.shape[1] else 1
    if width > 1:
        evidence = minimum_filter1d(evidence, size=width, axis=1, origin=(width - 1) // 2, mode="nearest")
    return evidence


DETECTORS = ("level", "shift", "seasonal", "flatline", "drift")


@dataclass
class Scores:
    """The evidence of each detector in robust sigmas, and the combined score in [0, 1], all (S, T).

    `winner` indexes DETECTORS: the detector with the most evidence, which
    the explanation of an alert names. `baseline` holds the forecast used at
    each sample (expected value, scale, z), for the explanation. `anchor`:
    the daily/weekly profile and its running bias (None where no series has
    a profile yet), which holds an incident open while a lasting fault lasts.
    """

    evidence: dict[str, np.ndarray]
    combined: np.ndarray
    winner: np.ndarray
    baseline: Baseline
    anchor: Anchor | None = None


def score_series(values: np.ndarray, times: np.ndarray | None = None,
                 params: DetectorParams = DEFAULT_PARAMS, with_evidence: bool = False,
                 history: History | None = None) -> Scores:
    """The general statistical detectors on every series, combined by the largest evidence.

    Two forecasters: the recent level (robust Holt) and the daily/weekly
    profile (once two previous periods exist); at each sample the one that
    has predicted better so far (smaller running scale) is the baseline.
    level / seasonal (named after the baseline): how unusual the reading is
    against both forecasters, the smaller |z| of the two where a profile
    exists (spikes, dips, sudden shifts; a daily step is expected); shift:
    CUSUM of the profile's z where a profile exists, else of the recent
    level's z (smaller sustained shifts, and slow drift that the level
    follows but the profile does not);
    flatline: stuck readings. Each gives
    evidence in robust sigmas; the largest is calibrated once to [0, 1]. All
    causal. Without `times` the samples are taken as evenly spaced and only
    the recent level is used. `with_evidence` also keeps each detector's
    evidence array (four more arrays the size of `values`). `history`:
    coarse older readings per series for the profile (see History).

    Series are scored in blocks of `block_series` rows written into
    preallocated outputs, so each block's temporaries stay in cache.
    """
    x = as_matrix(values)
    if times is not None:
        times = np.asarray(times)
        as_times(times, x.shape)  # validate once, before any work
    block = params.block_series
    if x.shape[0] <= block:
        scores = _score_block(x, times, params, history)
        if not with_evidence:
            scores.evidence = {}
        return scores
    out = Scores({name: np.empty(x.shape) for name in DETECTORS} if with_evidence else {}, np.empty(x.shape),
                 np.empty(x.shape, dtype=np.int8), Baseline(*(np.empty(x.shape) for _ in range(3))))
    for start in range(0, x.shape[0], block):
        rows = slice(start, start + block)
        part = _score_block(x[rows], times if times is None or times.ndim == 1 else times[rows], params,
                            None if history is None else history.rows(rows))
        out.combined[rows], out.winner[rows] = part.combined, part.winner
        out.baseline.expected[rows], out.baseline.scale[rows], out.baseline.z[rows] = \
            part.baseline.expected, part.baseline.scale, part.baseline.z
        for name in out.evidence:
            out.evidence[name][rows] = part.evidence[name]
        if part.anchor is not None:
            if out.anchor is None:
                out.anchor = Anchor(*(np.full(x.shape, np.nan) for _ in range(3)))
            out.anchor.profile[rows], out.anchor.bias[rows], out.anchor.scale[rows] = \
                part.anchor.profile, part.anchor.bias, part.anchor.scale
    return out


def _widened(x: np.ndarray, times: np.ndarray, recent: Baseline, keep: np.ndarray | None,
             params: DetectorParams) -> Baseline:
    """The recent level's baseline with its scale never below `day_scale_floor` times the same forecast
    errors' scale over a longer memory (about a quarter day), except where `keep` (a daily profile exists).

    Until the daily profile exists, the recent level is the only forecaster,
    and its scale is what the last hour or so made it: after a quiet night
    (no cars, no load) that is tiny, and the ordinary morning rise would be
    a string of many-sigma anomalies. How well the level has forecast over
    the last several hours is the honest yardstick until the profile says
    what each hour usually does; a spike still stands out against it.
    """
    step = typical_interval_ms(times)
    if not step > 0:
        return recent
    error = x - recent.expected
    quarter_day = min(1.0, 4.0 * step / DAY_MS)
    floor = _holt(error, quarter_day, quarter_day, False, params)[1]
    floor *= params.day_scale_floor
    scale = np.fmax(recent.scale, floor, out=floor)
    if keep is not None and keep.any():
        scale = np.where(keep, recent.scale, scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.divide(error, scale, out=error)
    z[np.isnan(recent.z)] = np.nan
    return Baseline(recent.expected, scale, z)


def _score_block(x: np.ndarray, times: np.ndarray | None, params: DetectorParams,
                 history: History | None = None) -> Scores:
    recent = robust_baseline(x, params)
    season = None if times is None else seasonal_baseline(x, times, params, history)
    has_season = None if season is None else np.isfinite(season.z)
    if times is not None and params.day_scale_floor > 0:
        recent = _widened(x, times, recent, has_season, params)
    if has_season is None or not has_season.any():
        # No profile anywhere in the block (too little history): the recent
        # level alone, without the array passes that choose between the two.
        evidence = {"level": np.abs(np.nan_to_num(recent.z)), "shift": cusum_evidence(recent.z, params),
                    "seasonal": np.zeros(x.shape), "flatline": flatline_evidence(x, params),
                    "drift": np.zeros(x.shape)}
        return _strongest(evidence, recent, params, skip=("seasonal", "drift"))
    # One forecaster per sample: the daily/weekly profile where it has
    # predicted better than the recent level so far, else the recent level.
    # A daily step (lights on at 07:00) is then expected, not an anomaly.
    use_season = has_season & (season.scale < recent.scale)
    z = np.where(use_season, season.z, recent.z)
    # Where a profile exists, a reading is unusual only if neither forecaster
    # expected it (a daily step, cooling on at 06:30, is in the profile), and
    # only if it is unusual in the same direction against the plain profile,
    # without the running bias learnt on top of it: readings back where the
    # daily profile puts them are a return to normal (a leak or a tampered
    # meter has ended), though the bias learnt during the fault makes them
    # look like a jump.
    recent_z = np.nan_to_num(recent.z)
    season_z = np.nan_to_num(season.z)
    plain_z = np.nan_to_num(season.plain_z)
    up = np.minimum(np.minimum(recent_z, season_z), plain_z)
    down = np.minimum(np.minimum(-recent_z, -season_z), -plain_z)
    both = np.where(has_season, np.maximum(np.maximum(up, down), 0.0), np.abs(recent_z))
    # The CUSUM likewise: of the profile's z where a profile exists (a daily
    # step is no shift, and a slow drift that the recent level follows is
    # still off the profile), in the same direction against the plain profile.
    shift = cusum_evidence(recent.z, params)
    season_up, season_down = cusum_sides(season.z, params)
    plain_up, plain_down = cusum_sides(season.plain_z, params)
    against_both = np.maximum(np.minimum(season_up, plain_up), np.minimum(season_down, plain_down))
    shift = np.where(has_season, against_both, shift)
    evidence = {
        "level": np.where(use_season, 0.0, both),
        "shift": shift,
        "seasonal": np.where(use_season, both, 0.0),
        "flatline": flatline_evidence(x, params),
        "drift": drift_evidence(x - season.profile, season.scale, params),
    }
    baseline = Baseline(np.where(use_season, season.expected, recent.expected),
                        np.where(use_season, season.scale, recent.scale), z)
    anchor = Anchor(season.profile, season.expected - season.profile, season.scale)
    scores = _strongest(evidence, baseline, params)
    scores.anchor = anchor
    return scores


def _strongest(evidence: dict[str, np.ndarray], baseline: Baseline, params: DetectorParams,
               skip: tuple[str, ...] = ()) -> Scores:
    """The largest evidence per sample, calibrated, and which detector gave it (`skip`: known to be all 0)."""
    best = evidence[DETECTORS[0]]
    winner = np.zeros(best.shape, dtype=np.int8)
    for index, name in enumerate(DETECTORS[1:], start=1):
        if name in skip:
            continue
        larger = evidence[name] > best
        best = np.where(larger, evidence[name], best)
        winner[larger] = index
    return Scores(evidence, calibrate(best, params), winner, baseline)
