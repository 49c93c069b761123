"""The compiled recursions of the incremental scorer (analytics.detectors.stream), each with its state in and out.

Each kernel is the recursion of kernels.py (or of the vectorised detector)
with the state it carries from one sample to the next kept in an array, so a
pass over the newest samples goes on exactly where the previous pass ended:
fed in chunks, the outputs are those of one pass over the whole series
(tests/analytics/test_stream.py checks it against score_series).
"""

import math

import numba
import numpy as np

from analytics import jitcache  # noqa: F401  (before any cache=True kernel: the cache follows the sources)
from analytics.detectors.kernels import cusum_step, holt_scale, holt_step

# Holt's state per series: level, slope, deviation, count, quantum, last reading.
HOLT_WIDTH = 6
HOLT_START = np.array([0.0, 0.0, 0.0, 0.0, 0.0, math.nan])
# CUSUM's state per series: upper, lower, lag product, previous z, energy.
CUSUM_WIDTH = 5
CUSUM_START = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
# The stuck-sensor state per series: previous reading, repeats, steps, repeats and steps at the run's start,
# the lowest reading so far, the lowest before the run, started (0/1).
FLAT_WIDTH = 8
FLAT_START = np.array([math.nan, 0.0, 0.0, 0.0, 0.0, math.nan, math.nan, 0.0])


@numba.njit(cache=True, nogil=True)
def holt(x, expected, scale, seen_before, state, a_level, a_scale, a_trend, warmup, clip, mad_to_sigma, rel_floor,
         abs_floor):
    """kernels.holt for (S, n) x from `state` (S, 6), per-series smoothing factors; also fills how many readings
    each sample's series had before it (for the warm-up)."""
    n_series, n_times = x.shape
    for s in range(n_series):
        level, slope, deviation, count, quantum, last = state[s]
        for t in range(n_times):
            xt = x[s, t]
            seen = count > 0
            forecast = level + slope
            sc = holt_scale(forecast, deviation, quantum, mad_to_sigma, rel_floor, abs_floor)
            expected[s, t] = forecast if seen else math.nan
            scale[s, t] = sc if seen else math.nan
            seen_before[s, t] = count
            if math.isnan(xt):
                continue
            level, slope, deviation, count, quantum, last = holt_step(
                xt, forecast, sc, seen, count >= warmup, slope, deviation, count, quantum, last, a_level[s],
                a_scale[s], a_trend[s], clip)
        state[s, 0], state[s, 1], state[s, 2], state[s, 3], state[s, 4], state[s, 5] = \
            level, slope, deviation, count, quantum, last


@numba.njit(cache=True, nogil=True)
def cusum(z, upper_out, lower_out, state, k, h, rho_alpha, unit, cap):
    """kernels.cusum for (S, n) z from `state` (S, 5)."""
    n_series, n_times = z.shape
    for s in range(n_series):
        upper, lower, lag_product, previous, energy = state[s]
        for t in range(n_times):
            upper, lower, lag_product, previous, energy = cusum_step(z[s, t], upper, lower, lag_product, previous,
                                                                     energy, k, h, rho_alpha, cap)
            upper_out[s, t] = upper * unit
            lower_out[s, t] = lower * unit
        state[s, 0], state[s, 1], state[s, 2], state[s, 3], state[s, 4] = upper, lower, lag_product, previous, energy


@numba.njit(cache=True, nogil=True)
def flatline(x, out, state, warmup, min_run):
    """flatline.flatline_nats for (S, n) x from `state` (S, 8): the surprise (nats) of the current run of
    identical readings given the steps before it; 0 while not ready and for a run at the lowest value before it."""
    n_series, n_times = x.shape
    for s in range(n_series):
        prev, repeats, steps, repeats_before, steps_before, floor, floor_before, started = state[s]
        for t in range(n_times):
            xt = x[s, t]
            if started == 0.0:
                floor_before = xt  # a run since the first sample is judged against that sample
                started = 1.0
            if not math.isnan(xt):
                if not math.isnan(prev):
                    steps += 1.0
                    if xt == prev:
                        repeats += 1.0
                    else:  # a change starts a new run
                        floor_before = floor
                        repeats_before, steps_before = repeats, steps
                prev = xt
                floor = xt if math.isnan(floor) else min(floor, xt)
            run = repeats - repeats_before
            at_floor = prev <= floor_before
            ready = steps_before >= warmup and run >= min_run and not at_floor
            out[s, t] = run * -math.log((repeats_before + 1.0) / (steps_before + 2.0)) if ready else 0.0
        state[s, 0], state[s, 1], state[s, 2], state[s, 3] = prev, repeats, steps, repeats_before
        state[s, 4], state[s, 5], state[s, 6], state[s, 7] = steps_before, floor, floor_before, started


@numba.njit(cache=True, nogil=True, inline="always")
def _first_later(times, n, target):
    """The first index of times[:n] (not decreasing) whose time is later than target (n where none is): a binary
    search (nearest's and history_at's)."""
    low, high = 0, n
    while low < high:
        middle = (low + high) // 2
        if times[middle] <= target:
            low = middle + 1
        else:
            high = middle
    return low


@numba.njit(cache=True, nogil=True)
def nearest(times, targets, tolerance):
    """Per row: the index in `times` (S, T, not decreasing) nearest to each target (S, n), -1 where none is
    within the row's tolerance (as seasonal_expected picks a lagged reading; the earlier one on a tie)."""
    n_series, n_times = times.shape
    out = np.full(targets.shape, -1, dtype=np.int64)
    for s in range(n_series):
        row = times[s]
        for j in range(targets.shape[1]):
            target = targets[s, j]
            before = _first_later(row, n_times, target) - 1
            after = min(before + 1, n_times - 1)
            pick = after if before < 0 or row[after] - target < target - row[max(before, 0)] else before
            if abs(row[pick] - target) <= tolerance[s]:
                out[s, j] = pick
    return out


@numba.njit(cache=True, nogil=True)
def window_mean_at(errors, index, width):
    """The mean of the finite `errors` (S, T) over the `width` samples centred on each index (S, n) as
    scipy's uniform_filter1d centres it (from index - width // 2); NaN for index -1 or no finite error."""
    n_series, n_times = errors.shape
    out = np.full(index.shape, np.nan)
    for s in range(n_series):
        for j in range(index.shape[1]):
            at = index[s, j]
            if at < 0:
                continue
            total = 0.0
            count = 0
            for i in range(max(at - width // 2, 0), min(at - width // 2 + width, n_times)):
                e = errors[s, i]
                if not math.isnan(e):
                    total += e
                    count += 1
            if count:
                out[s, j] = total / count
    return out


@numba.njit(cache=True, nogil=True)
def intervals(times, last):
    """Per row of `times` (S, T; 0 where empty): the median and the 90th percentile (numpy's linear
    quantile) of its positive intervals among the newest `last` samples; NaN where it has none."""
    n_series, n_times = times.shape
    median = np.full(n_series, np.nan)
    high = np.full(n_series, np.nan)
    steps = np.empty(last)
    for s in range(n_series):
        n = 0
        for i in range(max(n_times - last, 1), n_times):
            if times[s, i - 1] > 0 and times[s, i] > times[s, i - 1]:
                steps[n] = times[s, i] - times[s, i - 1]
                n += 1
        if n == 0:
            continue
        ordered = np.sort(steps[:n])
        median[s] = 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
        position = 0.9 * (n - 1)
        below = int(math.floor(position))
        above = min(below + 1, n - 1)
        high[s] = ordered[below] + (position - below) * (ordered[above] - ordered[below])
    return median, high


@numba.njit(cache=True, nogil=True)
def _entries(r, fine, fine_newest, coarse, coarse_newest, coarse_open, coarse_sums, bucket_ms, coarse_ms,
             times, values, tolerance):
    """Row r's closed buckets oldest first (CoarseHistory.window's entries without the empty ones); returns
    how many were written into times, values and tolerance."""
    n = 0
    coarse_size = coarse.shape[1]
    if coarse_size:
        newest = coarse_newest[r]
        if newest >= 0:
            for c in range(newest - coarse_size + 1, newest + 1):
                v = coarse[r, c % coarse_size]
                if not math.isnan(v):
                    times[n], values[n], tolerance[n] = c * coarse_ms + coarse_ms // 2, v, coarse_ms
                    n += 1
        total, count, offsets = coarse_sums[r, 0], coarse_sums[r, 1], coarse_sums[r, 2]
        if count > 0:
            times[n] = coarse_open[r] * coarse_ms + int(offsets / count) + bucket_ms // 2
            values[n], tolerance[n] = total / count, coarse_ms
            n += 1
    fine_size = fine.shape[1]
    newest = fine_newest[r]
    if newest >= 0:
        for b in range(newest - fine_size + 1, newest + 1):
            v = fine[r, b % fine_size]
            if not math.isnan(v):
                times[n], values[n], tolerance[n] = b * bucket_ms + bucket_ms // 2, v, bucket_ms
                n += 1
    return n


@numba.njit(cache=True, nogil=True)
def history_at(fine, fine_newest, coarse, coarse_newest, coarse_open, coarse_sums, rows, bucket_ms, coarse_ms,
               targets, x):
    """seasonal._history_at over a CoarseHistory's tiers as they are (no window laid out): per lag l, series s
    and new sample j, x[s, j] clipped to the range of the bucket covering targets[l, s, j] and its two
    neighbours; NaN where no bucket covers it."""
    n_lags, n_series, n_new = targets.shape
    out = np.full(targets.shape, np.nan)
    room = coarse.shape[1] + 1 + fine.shape[1]
    times = np.empty(room, dtype=np.int64)
    values = np.empty(room)
    tolerance = np.empty(room)
    for s in range(n_series):
        n = _entries(rows[s], fine, fine_newest, coarse, coarse_newest, coarse_open, coarse_sums, bucket_ms,
                     coarse_ms, times, values, tolerance)
        if n == 0:
            continue
        for lag in range(n_lags):
            for j in range(n_new):
                target = targets[lag, s, j]
                before = _first_later(times, n, target) - 1
                after = min(before + 1, n - 1)
                nearer = after if before < 0 or times[after] - target < target - times[before] else before
                farther = max(before, 0) if nearer == after else after
                close = abs(times[nearer] - target) <= tolerance[nearer]
                covers = before >= 0 and abs(times[farther] - target) <= tolerance[farther]
                pick = nearer if close or not covers else farther
                if not (close or covers):
                    continue
                lowest = highest = values[pick]
                for neighbour in (pick - 1, pick + 1):
                    if 0 <= neighbour < n:
                        reach = 2 * max(tolerance[neighbour], tolerance[pick])
                        if abs(times[neighbour] - target) <= reach:
                            lowest = min(lowest, values[neighbour])
                            highest = max(highest, values[neighbour])
                xj = x[s, j]
                out[lag, s, j] = min(max(xj, lowest), highest) if not math.isnan(xj) else math.nan
    return out
