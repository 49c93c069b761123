"""The inputs every detector shares: array checks, calibration, NaN-aware medians, the
sampling interval, and the small dataclasses the detectors return."""

import math
import warnings
from dataclasses import dataclass

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors import season_kernels


class DetectorInputError(ValueError):
    """The arrays given to a detector are not what it needs."""


def check_alphas(*alphas: float) -> None:
    """Every smoothing step in (0, 1] (a Holt recursion's), else DetectorInputError; NaN is not."""
    if not all(0 < alpha <= 1 for alpha in alphas):
        raise DetectorInputError("alpha must be in (0, 1]")


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
    # A comparison, not np.diff: one byte a pair instead of eight, and no overflow between times far apart.
    if shape[1] > 1 and (t[:, 1:] < t[:, :-1]).any():
        raise DetectorInputError("times must not decrease along a series")
    return t


def calibrate(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS, out: np.ndarray | None = None) -> np.ndarray:
    """A robust z (any sign) to a score in [0, 1]: logistic in |z|, 0.5 at `z_mid` sigmas; NaN -> 0.

    Because z is in units of each series' own robust scale, one score
    threshold is the same number of sigmas on every series. `out`: a float64
    array of z's shape to write the score into (z itself may be it).
    """
    # Each step in place on one array (the same ufuncs in the same order as with a temporary per step, so the
    # same bits, tests/analytics/test_level_pass.py), not six arrays the size of z.
    z = np.asarray(z, dtype=np.float64)
    score = np.abs(z, out=np.empty(z.shape) if out is None else out)
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(score, params.z_mid, out=score)
        np.negative(score, out=score)
        np.divide(score, params.z_width, out=score)
        np.exp(score, out=score)
        np.add(1.0, score, out=score)
        np.divide(1.0, score, out=score)
    # Shift so z = 0 scores exactly 0 and the range stays [0, 1].
    at_zero = 1.0 / (1.0 + np.exp(params.z_mid / params.z_width))
    np.subtract(score, at_zero, out=score)
    np.divide(score, 1.0 - at_zero, out=score)
    np.nan_to_num(score, copy=False, nan=0.0)
    np.clip(score, 0.0, 1.0, out=score)
    return score if score.ndim else score[()]


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

    Up to three arrays the median is the sum less the extremes. Compiled (season_kernels.median_of_few:
    one pass, no stack) for float arrays of one shape; the same bits as _median_of_few_numpy.
    """
    flat = _flat_float_arrays(arrays)
    if flat is None:
        return _median_of_few_numpy(arrays, min_count)
    out = np.empty(flat[0].size)
    season_kernels.median_of_few(flat, int(min_count), out)
    return out.reshape(np.shape(arrays[0]))


def _flat_float_arrays(arrays: list[np.ndarray]) -> tuple[np.ndarray, ...] | None:
    """The arrays as a tuple of contiguous 1-D float64 views (copies where needed) if all are float64 arrays of
    one shape, else None (the numpy code then broadcasts them as it always did)."""
    if not arrays or not all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in arrays):
        return None
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        return None
    return tuple(np.ascontiguousarray(a).reshape(-1) for a in arrays)


def _median_of_few_numpy(arrays: list[np.ndarray], min_count: int = 1) -> np.ndarray:
    """median_of_few in whole-array numpy (the compiled path's reference, and for arrays of mixed shapes)."""
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
    nearest to the wanted time, if within `tolerance_ms`: one figure, or one
    per entry (same shape as times) where entries are buckets of different
    sizes (a fine recent tier, a coarse older one).
    """

    values: np.ndarray
    times: np.ndarray
    tolerance_ms: float | np.ndarray

    def rows(self, rows: slice) -> "History":
        tolerance = self.tolerance_ms if np.ndim(self.tolerance_ms) == 0 else self.tolerance_ms[rows]
        return History(self.values[rows], self.times[rows], tolerance)

    def tolerance_at(self, index: np.ndarray) -> float | np.ndarray:
        """The tolerance of the entries at `index` (per row, as np.take_along_axis takes them)."""
        if np.ndim(self.tolerance_ms) == 0:
            return self.tolerance_ms
        return np.take_along_axis(self.tolerance_ms, index, axis=1)



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
    return _typical(median_interval_ms(t[None] if t.ndim == 1 else t))


def median_interval_ms(times: np.ndarray) -> np.ndarray:
    """Each series' median sampling interval (ms), NaN where fewer than two samples."""
    return _interval_quantiles(times, (0.5,))[0]


def long_interval_ms(times: np.ndarray) -> np.ndarray:
    """Each series' 90th-percentile sampling interval (ms): its median on a regular series, NaN under two samples."""
    return _interval_quantiles(times, (0.9,))[0]


def sampling_intervals_ms(times: np.ndarray) -> tuple[float, np.ndarray]:
    """typical_interval_ms(times) and long_interval_ms of its rows as int64 (one row where the times are one
    shared (T,) row): what score_series' profile, widening and gaps read, the same values, from one set of steps
    where the times are int64 already (other times' own steps are not those of their int64 cast)."""
    t = np.asarray(times)
    rows = t[None] if t.ndim == 1 else t
    if rows.dtype != np.int64:
        return typical_interval_ms(t), long_interval_ms(rows.astype(np.int64))
    median, long = _interval_quantiles(rows, (0.5, 0.9))
    return _typical(median), long


def _typical(interval: np.ndarray) -> float:
    return float(np.nanmedian(interval)) if np.isfinite(interval).any() else math.nan


def _interval_quantiles(times: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Each series' sampling interval at each of `quantiles`, from one set of steps; NaN under two samples."""
    if times.shape[1] < 2:
        return [np.full(times.shape[0], np.nan) for _ in quantiles]
    steps = np.diff(times, axis=1)
    # Every step the same (a regular series, most files): that step is every quantile, as numpy's would give.
    if steps.size and steps.min() == steps.max() > 0:
        return [np.full(times.shape[0], float(steps[0, 0])) for _ in quantiles]
    steps = steps.astype(np.float64)
    steps[steps <= 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [np.nanmedian(steps, axis=1) if q == 0.5 else np.nanquantile(steps, q, axis=1) for q in quantiles]

