"""The daily and weekly profile: the same time of earlier days (of the same type) and weeks as a forecaster."""

import math
from dataclasses import replace

import numpy as np

from analytics.config import DAY_MS, DEFAULT_PARAMS, DetectorParams
from analytics.detectors import season_kernels
from analytics.detectors.base import (
    Baseline,
    DetectorInputError,
    History,
    _flat_float_arrays,
    _rowwise_searchsorted,
    as_matrix,
    as_times,
    long_interval_ms,
    median_of_few,
    nanmedian_first_axis,
    typical_interval_ms,
)
from analytics.detectors.level import robust_baseline
from analytics.localtime import HOUR_MS, fixed_offset_ms, offsets_ms, to_local


def seasonal_expected(values: np.ndarray, times: np.ndarray, period_ms: int,
                      params: DetectorParams = DEFAULT_PARAMS, history: History | None = None,
                      smoothed: dict | None = None) -> np.ndarray:
    """The value expected at each sample from the same phase of previous periods.

    For lags k = 1..season_lags, take the reading nearest to t - k * period
    (within half the series' median interval, so always before t); the expected
    value is the median of those found, or NaN when fewer than
    `season_min_lags` exist. Timestamps may be irregular and differ per
    series. The local day is a fixed UTC offset (the city profile's standard
    time), so a lag of whole days is the same local time of day.

    With `params.day_types` the daily profile compares like with like: a
    working day with the working days, a weekend day with the weekend days
    (local time, params.utc_offset_h) of the past week; where a day type
    has only two of them, the all-days profile breaks a tie between them
    (day_type_profile).

    `history`: where a series' own buffer has no reading at a lag, its
    coarse history is looked up instead (a 4-hour buffer of 10-second
    readings plus a week of per-minute means).
    `smoothed`: a dict the caller keeps across calls on the same times
    (seasonal_baseline), where the look-up tolerance and each lag's nearest
    samples are kept, and the running median of the values (for calls on
    the same values too: the daily and the weekly profile), so they are
    computed once, not per call.
    """
    x = as_matrix(values)
    # One time row for all series: one search instead of one per row.
    shared = np.ndim(times) == 1 and history is None
    t = as_times(times, x.shape)
    if period_ms <= 0:
        raise DetectorInputError("period_ms must be positive")
    if x.shape[1] == 0 or x.shape[0] == 0:
        return np.full(x.shape, np.nan)
    # A lagged reading counts if it is within half a (long) sampling interval of t - k * period: the
    # 90th percentile of the intervals, which is the median on a regular series, and on an irregular
    # one (a logger writing on events, exponential gaps) still finds a reading at most lags.
    keep = smoothed is not None  # the caller keeps what depends on the times only for its next call
    if smoothed is None:
        smoothed = {}
    if ("tolerance", shared) not in smoothed:
        smoothed["tolerance", shared] = _tolerance(long_interval_ms(t[:1] if shared else t), shared, x.shape[0])
    tolerance = smoothed["tolerance", shared]
    key = ("median", shared, params.profile_smooth_samples)
    if key not in smoothed:
        smoothed[key] = _running_median(x, t[:1] if shared else t, tolerance, params.profile_smooth_samples)
    smooth, latest = smoothed[key]
    lagged = []
    last = x.shape[1] - 1
    by_day_type = params.day_types and period_ms == DAY_MS
    lags = range(1, max(7, params.season_lags) + 1) if by_day_type else range(1, params.season_lags + 1)
    # Shared times and a fixed UTC offset: each lag's targets and look-up in one compiled pass (season_kernels.
    # lag_lookup; the day types from one table of the days spanned), not arrays of targets, close flags and day
    # types a lag; the day-type profile masks each lag's found readings by that table as it reads them
    # (day_type_profile_of_lags), not in masked copies of them (three arrays the size of the file fewer alive).
    table = _day_table(t[0], max(lags), params) if shared else None
    weekend = _is_day_off(t, params) if by_day_type and table is None else None
    anyday = []  # with day types: the previous season_lags days whatever their type (the all-days profile's)
    same_lags = []  # with day types and the table: the lag (days) of each of `lagged`, whose type masks it
    for lag in lags:
        if table is not None:
            day_off, first_day, offset = table
            found = np.empty(x.shape)
            # The nearest samples of this lag's targets depend on the times only: kept in the caller's dict for
            # the next call on these times (the usual error's), which then gathers without a search.
            index = smoothed.get(("nearest", period_ms, lag))
            search = index is None
            keep_index = search and keep and x.shape[1] < 2**31
            if search:
                index = np.empty(x.shape[1], dtype=np.int32) if keep_index else _NO_INDEX
            any_close, any_same, any_found = season_kernels.lag_lookup(
                t[0], lag * period_ms, float(tolerance), index, search, keep_index, smooth, latest,
                max(int(params.profile_smooth_samples), 0), x, found,
                by_day_type and lag <= 7, lag, day_off, first_day, offset, DAY_MS)
            if keep_index:
                smoothed["nearest", period_ms, lag] = index
            if not any_close:
                continue
            if not by_day_type:
                if any_found:
                    lagged.append(found)
                continue
            if lag <= params.season_lags:
                anyday.append(found)
            if lag <= 7 and any_same:
                lagged.append(found)
                same_lags.append(lag)
            continue
        if shared:
            target = _same_local_time(t[0], lag * period_ms, params)
            found, close = np.empty(x.shape), np.empty(x.shape[1], dtype=bool)
            # _lag_found_numpy's search, gathers and choices in one compiled pass (the same values).
            season_kernels.lag_found(t[0], target, float(tolerance), smooth, latest, x, found, close)
            if not close.any():
                continue
            same_type = weekend[0] == _is_day_off(target, params) if by_day_type else None
        else:
            target = _same_local_time(t, lag * period_ms, params)
            before = _rowwise_searchsorted(t, target)
            after = np.minimum(before + 1, last)
            t_before = np.take_along_axis(t, np.maximum(before, 0), axis=1)
            t_after = np.take_along_axis(t, after, axis=1)
            nearest = np.where((before < 0) | (t_after - target < target - t_before), after, before)
            close = np.abs(np.take_along_axis(t, nearest, axis=1) - target) <= tolerance
            causal = np.take_along_axis(latest, nearest, axis=1) < t
            found = np.where(close, np.where(causal, np.take_along_axis(smooth, nearest, axis=1),
                                             np.take_along_axis(x, nearest, axis=1)), np.nan)
            if history is not None:
                found = np.where(close, found, _history_at(history, target, x))
            same_type = weekend == _is_day_off(target, params) if by_day_type else None
        if by_day_type:
            if lag <= params.season_lags:
                anyday.append(found)
            if lag > 7:
                continue
            found = np.where(same_type, found, np.nan)
            if (close & same_type).any() if shared else not np.isnan(found).all():
                lagged.append(found)
        elif not np.isnan(found).all():
            lagged.append(found)
    if len(lagged) < params.season_min_lags:
        return np.full(x.shape, np.nan)
    if by_day_type and table is not None:
        return _day_type_profile_of_lags(lagged, same_lags, anyday, t[0], table, params)
    if by_day_type:
        return day_type_profile(lagged, anyday, params)
    return median_of_few(lagged, params.season_min_lags)


def _day_type_profile_of_lags(found: list[np.ndarray], lags: list[int], anyday: list[np.ndarray], t: np.ndarray,
                              table: tuple[np.ndarray, int, int], params: DetectorParams) -> np.ndarray:
    """day_type_profile of the lags' found readings, each masked to the readings whose local day is of the type
    of the day `lags` days before it (the day-off table of _day_table), as it is read (season_kernels.
    day_type_profile_of_lags): the same values as day_type_profile of the masked copies."""
    tiebreak = params.day_type_tiebreak and len(found) >= 2 and len(anyday) >= params.season_min_lags
    day_off, first_day, offset = table
    out = np.empty(found[0].shape)
    flat_found = tuple(a.reshape(-1) for a in found)  # C-contiguous (lag_lookup's): views
    season_kernels.day_type_profile_of_lags(flat_found, np.asarray(lags, dtype=np.int64),
                                            tuple(a.reshape(-1) for a in anyday) if tiebreak else flat_found,
                                            bool(tiebreak),
                                            int(params.season_min_lags), t, day_off, first_day, offset, DAY_MS, out)
    return out


def _lag_found_numpy(t: np.ndarray, target: np.ndarray, tolerance: float, smooth: np.ndarray,
                     latest: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """season_kernels.lag_found in whole-array numpy (its reference in the tests): (found, close)."""
    last = t.size - 1
    before = np.searchsorted(t, target, side="right") - 1
    after = np.minimum(before + 1, last)
    nearest = np.where((before < 0) | (t[after] - target < target - t[np.maximum(before, 0)]), after, before)
    close = np.abs(t[nearest] - target) <= tolerance
    causal = latest[:, nearest] < t
    return np.where(close, np.where(causal, smooth[:, nearest], x[:, nearest]), np.nan), close


def day_type_profile(same: list[np.ndarray], anyday: list[np.ndarray], params: DetectorParams) -> np.ndarray:
    """The day-type profile: the median of its own day type's lags in the week (`same`); where it has exactly
    two of them (a weekend day always: Saturday and Sunday of the week before, or yesterday and a week ago),
    the all-days profile (the median of `anyday`, the previous season_lags days whatever their type) breaks the
    tie when it is nearer to one of the two than they are to each other: the median of the three.

    A median of two is their mean: one odd day among them (a sensor stuck for a morning of the first
    weekend) shifts the next weekend's profile by half of it, and both days of that weekend were judged
    against it (the drift alarms of a simulated week's Saturday and Sunday, api/README.md). Where the weekend
    differs from the working days (offices, occupancy) the all-days profile is far from both weekend days and
    the mean stands (a median of three would take the nearer of the two: biased, a drift alarm in tests).
    Judging a young day type by the all-days profile alone raised 57 false weekend alarms on that week
    instead of 12.
    """
    if not params.day_type_tiebreak or len(same) < 2 or len(anyday) < params.season_min_lags:
        return median_of_few(same, params.season_min_lags)
    same_flat, anyday_flat = _flat_float_arrays(same), _flat_float_arrays(anyday)
    if same_flat is not None and anyday_flat is not None and same[0].shape == anyday[0].shape:
        out = np.empty(same_flat[0].size)
        season_kernels.day_type_profile(same_flat, anyday_flat, int(params.season_min_lags), out)
        return out.reshape(same[0].shape)
    return _day_type_profile_numpy(same, anyday, params)


def _day_type_profile_numpy(same: list[np.ndarray], anyday: list[np.ndarray], params: DetectorParams) -> np.ndarray:
    """day_type_profile's tie-break in whole-array numpy (the compiled path's reference in the tests)."""
    profile = median_of_few(same, params.season_min_lags)
    count = sum((~np.isnan(a)).astype(np.int8) for a in same)
    low, high = same[0], same[0]
    for array in same[1:]:
        low, high = np.fmin(low, array), np.fmax(high, array)
    whole = median_of_few(anyday, params.season_min_lags)
    with np.errstate(invalid="ignore"):
        near = np.fmin(np.abs(whole - low), np.abs(whole - high)) < high - low
    return np.where((count == 2) & near, np.clip(whole, low, high), profile)


def _running_median(x: np.ndarray, t: np.ndarray, tolerance: np.ndarray | float,
                    half: int) -> tuple[np.ndarray, np.ndarray]:
    """Each reading's centred running median over up to `half` samples either side, and the latest time in it.

    The profile reads an earlier day through it: a median of 2 half + 1 (CSV_PARAMS: seven) instead
    of one reading, so the profile's own noise falls to about a third (five) or a quarter (seven) of its
    variance and a spike stands out further against it, while a daily step
    stays sharp (a running median keeps edges). A neighbour counts only if
    it is within (2 half + 1) tolerances of the reading (not across a gap).
    The caller uses the median only where its latest time is before the
    reading being judged (never looking ahead), else the plain reading.
    Returns (median, latest time), both (S, T).
    """
    if half <= 0:
        return x, t
    reach = (2 * half + 1) * np.broadcast_to(np.asarray(tolerance, dtype=np.float64).reshape(-1), t.shape[:1])
    median, latest = np.empty(x.shape), np.empty(t.shape, dtype=np.int64)
    season_kernels.running_median(x, np.ascontiguousarray(t, dtype=np.int64), np.ascontiguousarray(reach),
                                  int(half), median, latest)
    # Only read from here on. Read-only as the times returned above are where the times are (one time row shared):
    # the kernels that read both (lag_lookup) are then compiled and loaded once, not once for each (~4 ms a load).
    latest.flags.writeable = t.flags.writeable
    return median, latest


def _running_median_numpy(x: np.ndarray, t: np.ndarray, tolerance: np.ndarray | float,
                          half: int) -> tuple[np.ndarray, np.ndarray]:
    """_running_median in whole-array numpy (the compiled path's reference in the tests)."""
    if half <= 0:
        return x, t
    last = x.shape[1] - 1
    reach = (2 * half + 1) * tolerance
    index = np.arange(x.shape[1])
    picks, latest = [x], t
    for offset in (*range(-half, 0), *range(1, half + 1)):
        at = np.clip(index + offset, 0, last)
        usable = (at == index + offset) & (np.abs(t[:, at] - t) <= reach)
        picks.append(np.where(usable, x[:, at], np.nan))
        if offset > 0:
            latest = np.where(usable, np.maximum(latest, t[:, at]), latest)
    return nanmedian_first_axis(np.stack(picks)), latest


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
    nearer = np.where((before < 0) | (t_after - target < target - t_before), after, before)
    farther = np.where(nearer == after, np.maximum(before, 0), after)
    close = np.abs(np.take_along_axis(h_times, nearer, axis=1) - target) <= history.tolerance_at(nearer)
    # The nearer entry's bucket may not reach the target where the farther one's does (a coarse older bucket
    # beside a fine recent one): the nearest entry whose bucket covers the target. With one tolerance for all,
    # the nearer one covers whenever the farther one does.
    covers = (before >= 0) & (np.abs(np.take_along_axis(h_times, farther, axis=1) - target)
                              <= history.tolerance_at(farther))
    nearest = np.where(close | ~covers, nearer, farther)
    close |= covers
    low = high = np.take_along_axis(history.values, nearest, axis=1)
    for neighbour in (np.maximum(nearest - 1, 0), np.minimum(nearest + 1, last)):
        # Within twice the larger bucket of the two: where a coarse older tier meets the fine recent one, a
        # step inside the coarse bucket still finds the fine bucket after it.
        reach = 2 * np.maximum(history.tolerance_at(neighbour), history.tolerance_at(nearest))
        near = np.abs(np.take_along_axis(h_times, neighbour, axis=1) - target) <= reach
        value = np.where(near, np.take_along_axis(history.values, neighbour, axis=1), np.nan)
        low, high = np.fmin(low, value), np.fmax(high, value)
    return np.where(close & ~np.isnan(low), np.clip(x, low, high), np.nan)


def _same_local_time(t_ms: np.ndarray, back_ms: int, params: DetectorParams) -> np.ndarray:
    """t_ms - back_ms, moved to the same local wall-clock time when back_ms is whole days and the
    city's zone changed its offset in between (a day of a daylight-saving change: 23 or 25 hours)."""
    target = t_ms - back_ms
    if params.time_zone and back_ms % DAY_MS == 0 and fixed_offset_ms(params.time_zone) is None:
        target = target + (offsets_ms(t_ms, params.time_zone) - offsets_ms(target, params.time_zone))
    return target


def _is_day_off(t_ms: np.ndarray, params: DetectorParams) -> np.ndarray:
    """Is the local day of t_ms a day off: a weekly rest day or one of params.days_off (holidays)?"""
    day = to_local(t_ms, params.time_zone, params.utc_offset_h) // DAY_MS
    if day.size < 64:
        return _day_off(day, params)
    # Each day once, then looked up (a million readings span a few hundred days).
    first, last = int(day.min()), int(day.max())
    if last - first > day.size:
        return _day_off(day, params)
    return _day_off(np.arange(first, last + 1), params)[day - first]


def _day_table(t_ms: np.ndarray, lag_days: int, params: DetectorParams) -> tuple[np.ndarray, int, int] | None:
    """For non-decreasing t_ms (T,) under a fixed UTC offset: (whether each local day is a day off, from the
    local day lag_days before the first time's to the last time's; that first day; the offset in ms), the
    table's values _day_off's. None under a zone with daylight saving (_same_local_time moves the targets), for
    no times, or when the days spanned are far more than the times."""
    if t_ms.size == 0:
        return None
    if params.time_zone:
        offset = fixed_offset_ms(params.time_zone)
        if offset is None:
            return None
    else:
        offset = params.utc_offset_h * HOUR_MS
    first = (int(t_ms[0]) + offset) // DAY_MS - lag_days
    last = (int(t_ms[-1]) + offset) // DAY_MS
    if last - first > t_ms.size + 1000:
        return None
    return np.ascontiguousarray(_day_off(np.arange(first, last + 1), params), dtype=np.bool_), first, int(offset)


_NO_INDEX = np.empty(1, dtype=np.int32)


def _day_off(day: np.ndarray, params: DetectorParams) -> np.ndarray:
    """Is this local day (days since 1970-01-01) a day off?"""
    # 1970-01-01 was a Thursday: +3 makes Monday 0, so Saturday and Sunday are 5 and 6.
    off = np.isin((day + 3) % 7, params.rest_weekdays)
    if params.days_off:
        off |= np.isin(day, params.days_off)
    return off


def _tolerance(long_ms: np.ndarray, shared: bool, series: int) -> float | np.ndarray:
    """How near t - k * period a lagged reading must be: half the long sampling interval (long_interval_ms of
    the times' rows; one row where they are shared), one number for shared times, else one a series (S, 1)."""
    return 0.5 * (long_ms[0] if shared else np.broadcast_to(long_ms, (series,))[:, None])


def seasonal_baseline(values: np.ndarray, times: np.ndarray, params: DetectorParams = DEFAULT_PARAMS,
                      history: History | None = None, step_ms: float | None = None,
                      long_ms: np.ndarray | None = None) -> Baseline:
    """The daily and weekly profiles as a forecaster: expected value, robust scale and z per sample.

    The residual x - seasonal_expected is itself given a robust (flat)
    baseline, so a profile that is biased (a busier week) does not alarm,
    only a departure from how well the profile usually predicts. Where both
    profiles exist, the one with the smaller running scale (the better
    predictor so far) is used. NaN where no profile exists yet.
    `history`: coarse older readings per series (see History). `step_ms`:
    typical_interval_ms(times) where the caller has it (computed once); `long_ms`: likewise long_interval_ms of
    the times' rows as int64 (base.sampling_intervals_ms gives both from one set of steps).
    """
    x = as_matrix(values)
    t = as_times(times, x.shape)
    out = None  # the first profile's choice writes every element (take_first), so nothing is filled with NaN first
    span = _span_ms(x, t[:, 0], t[:, -1], history)
    if step_ms is None:  # the caller may know it already (typical_interval_ms(times))
        step_ms = typical_interval_ms(times) if params.profile_scale_by_hour else math.nan
    smoothed: dict = {}  # the running median of x, the look-up tolerance, each lag's nearest samples: computed once
    if long_ms is not None:
        shared = np.ndim(times) == 1 and history is None  # as seasonal_expected's
        smoothed["tolerance", shared] = _tolerance(long_ms, shared, x.shape[0])
    for period in params.season_periods_ms:
        if span < params.season_min_lags * period:
            continue  # not enough history for this profile anywhere
        profile = seasonal_expected(x, times, period, params, history, smoothed)
        residual = x - profile
        fit = robust_baseline(residual, params, trend=False)
        if params.profile_scale_by_hour:
            # Other values (the usual error) on the same times: only what depends on the times is shared (the
            # tolerance, each lag's nearest samples).
            fit = _scale_by_time_of_day(residual, fit, times, period, step_ms, params,
                                        {key: value for key, value in smoothed.items() if key[0] != "median"})
        # This period's nearest samples (an int32 array the size of the file a lag) are not read again: freed
        # before the next period's lags are looked up (the weekly profile's peak of memory).
        for key in [key for key in smoothed if key[:2] == ("nearest", period)]:
            del smoothed[key]
        # Where this profile's fit is finite and not worse (smaller or equal scale, or none kept yet): its
        # expected (profile + fit), scale, z, plain z and profile, in place (take_better: one pass).
        choice = season_kernels.take_better
        if out is None:
            out, choice = Baseline(*(np.empty(x.shape) for _ in range(5))), season_kernels.take_first
        choice(*(np.ascontiguousarray(a, dtype=np.float64) for a in (x, profile, fit.expected, fit.scale, fit.z)),
               out.expected, out.scale, out.z, out.plain_z, out.profile)
    return Baseline(*(np.full(x.shape, np.nan) for _ in range(5))) if out is None else out


def profile_possible(x: np.ndarray, times: np.ndarray, params: DetectorParams = DEFAULT_PARAMS,
                     history: History | None = None) -> bool:
    """Whether seasonal_baseline tries any profile on (S, T) x (times validated by as_times already): False when
    the readings and history span less than season_min_lags of every period, so it would return only NaN.
    Reads the first and last times only, so a caller skips it (five NaN arrays the size of x) for nothing."""
    t = np.asarray(times)
    if x.size == 0:
        return False
    first, last = t[..., 0].astype(np.int64), t[..., -1].astype(np.int64)
    span = _span_ms(x, np.atleast_1d(first), np.atleast_1d(last), history)
    return any(span >= params.season_min_lags * period for period in params.season_periods_ms)


def _span_ms(x: np.ndarray, first: np.ndarray, last: np.ndarray, history: History | None) -> int:
    """ms from the earliest reading (or history entry) to the latest reading; first, last: int64 per row."""
    start = first.min() if x.size else 0
    if history is not None and x.size and not np.isnan(history.values).all():
        start = min(start, history.times[~np.isnan(history.values)].min())
    return int(last.max() - start) if x.size else 0


def _scale_by_time_of_day(residual: np.ndarray, fit: Baseline, times: np.ndarray, period_ms: int,
                          step_ms: float, params: DetectorParams, smoothed: dict | None = None) -> Baseline:
    """The profile fit with its scale never below the profile's usual error at this time of the period.

    (Never below params.profile_usual_share of it: 1 for the engine, less for a CSV.)

    The running scale is what the last hour or so made it: after a quiet
    night (no cars, lights off) it is tiny, and the morning, when the
    profile always predicts worse, would look anomalous every day (the
    running scale grows only a few percent a sample, too slow for a morning
    of a dozen 5-minute readings). The mean absolute error of the profile
    fit within `profile_scale_window_ms` around the same time of the earlier
    periods (their median, so one bad day does not count) says how well it
    usually does at this hour. Only earlier periods are read: causal.
    step_ms: the series' typical sampling interval (typical_interval_ms).
    `smoothed`: seasonal_expected's, holding what depends on these times only (tolerance, nearest samples).
    """
    if not step_ms > 0:
        return fit
    width = int(min(max(1, round(params.profile_scale_window_ms / step_ms)), residual.shape[1]))
    residual, expected, fit_z = (np.ascontiguousarray(a, dtype=np.float64) for a in (residual, fit.expected, fit.z))
    # The mean known error around each sample: one compiled pass for numpy's and scipy's steps (season_kernels.
    # mean_error_near; likewise the z below, the same bits as _scale_numpy's steps).
    local = np.empty(residual.shape)
    season_kernels.mean_error_near(residual, expected, width, local)
    # `local` is a mean over an hour already: read at the earlier days as it is, not smoothed again.
    as_is = replace(params, profile_smooth_samples=0)
    # The floor is a share of that usual error (profile_usual_share): where the running scale already says as much,
    # the larger of two estimates of one spread would stand above both (see the config).
    usual = (params.mad_to_sigma * params.profile_usual_share) * seasonal_expected(local, times, period_ms, as_is,
                                                                                  smoothed=smoothed)
    scale = np.fmax(fit.scale, usual)
    z = np.empty(residual.shape)
    season_kernels.z_where_fit(residual, expected, np.ascontiguousarray(scale, dtype=np.float64), fit_z, z)
    return Baseline(fit.expected, scale, z)


def _scale_numpy(residual: np.ndarray, fit: Baseline, local_usual: np.ndarray | None, width: int,
                 mad_to_sigma: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """_scale_by_time_of_day's numpy steps (the compiled passes' reference in the tests): (local, scale, z), the
    last two from local_usual (seasonal_expected of local) when given, else None. mad_to_sigma: the factor on
    local_usual (params.mad_to_sigma * params.profile_usual_share)."""
    from scipy.ndimage import uniform_filter1d  # here, not on top: the score path does not import scipy

    error = np.abs(residual - fit.expected)
    known = ~np.isnan(error)
    total = uniform_filter1d(np.where(known, error, 0.0), size=width, axis=1, mode="constant")
    count = uniform_filter1d(known.astype(np.float64), size=width, axis=1, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(count > 0, total / count, np.nan)
    if local_usual is None:
        return local, None, None
    scale = np.fmax(fit.scale, mad_to_sigma * local_usual)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(np.isnan(fit.z), np.nan, (residual - fit.expected) / scale)
    return local, scale, z


def seasonal_z(values: np.ndarray, times: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Robust z against the daily and weekly profiles (seasonal_baseline's z)."""
    return seasonal_baseline(values, times, params).z


