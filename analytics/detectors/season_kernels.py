"""The daily/weekly profile's look-ups and medians, compiled with numba (seasonal.py's fast path).

Each replaces a chain of whole-array numpy passes (a search, a dozen gathers and `where`s, a sort of a
stack of lags) by one pass that does the same arithmetic in the same order, so the results are the same
bits: tests/analytics/test_season_kernels.py holds each to the numpy code it replaces (kept in seasonal.py
and base.py as the `_numpy` functions).
"""

import math

import numba
import numpy as np

from analytics import jitcache  # noqa: F401  (before any cache=True kernel: the cache follows the sources)

# The look-ups' tile of times: its per-time facts stay in the first cache level, and a series' stretch of it is
# read in one run.
TILE = 2048


@numba.njit(cache=True, nogil=True)
def lag_found(t: np.ndarray, target: np.ndarray, tolerance: float, smooth: np.ndarray, latest: np.ndarray,
              x: np.ndarray, found: np.ndarray, close: np.ndarray) -> None:
    """seasonal_expected's look-up of one lag on one time row t (T,) shared by the S series of x (S, T).

    For each target (T,): the sample of t nearest to it (the later one unless the earlier is strictly
    nearer: np.searchsorted(side="right") - 1 and its successor), close if within tolerance; found (S, T)
    is the smoothed reading there when its latest time (latest: (S, T) or (1, T)) is before t, else the
    plain reading, NaN where not close; close (T,) bool. The search walks from the previous target's
    place (targets t - lag rise with t), in either direction, so it is the binary search's answer for any
    order of targets.
    """
    n = t.size
    last = n - 1
    j = -1  # the last index with t[j] <= target, -1 if none
    rows = latest.shape[0]
    tile = max(min(n, TILE), 1)  # a tile of targets, then each series along its row there (lag_lookup says why)
    nearest_at = np.empty(tile, dtype=np.int64)
    for begin in range(0, n, tile):
        stop = min(begin + tile, n)
        for i in range(begin, stop):
            wanted = target[i]
            # The same walk as lag_lookup's (_sample_at, after its guess), written in each: shared with lag_found
            # as an inlined helper it made the one-series look-up (a city score file) ~20 % slower
            # (bench_lag_lookup.py --series 1 --samples 1000000).
            while j + 1 < n and t[j + 1] <= wanted:
                j += 1
            while j >= 0 and t[j] > wanted:
                j -= 1
            after = min(j + 1, last)
            nearest = after if j < 0 or t[after] - wanted < wanted - t[max(j, 0)] else j
            close[i] = abs(t[nearest] - wanted) <= tolerance
            nearest_at[i - begin] = nearest
        for s in range(x.shape[0]):
            row = min(s, rows - 1)
            for i in range(begin, stop):
                nearest = nearest_at[i - begin]
                if not close[i]:
                    found[s, i] = math.nan
                elif latest[row, nearest] < t[i]:
                    found[s, i] = smooth[s, nearest]
                else:
                    found[s, i] = x[s, nearest]


@numba.njit(cache=True, nogil=True, inline="always")
def _insert_sorted(buffer: np.ndarray, n: int, value: float) -> int:
    """value into the sorted buffer[:n] (one step of an insertion sort); the new count."""
    m = n
    while m > 0 and buffer[m - 1] > value:
        buffer[m] = buffer[m - 1]
        m -= 1
    buffer[m] = value
    return n + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _median_at(arrays, i: int, buffer: np.ndarray, min_count: int) -> float:  # noqa: ANN001
    """base.median_of_few at element i of the 1-D arrays (a tuple), the same arithmetic in the same order."""
    k = len(arrays)
    if k > 3:
        # nanmedian_first_axis: sorted (NaN last), the mean of the two middle finite values.
        n = 0
        for a in range(k):
            value = arrays[a][i]
            if not math.isnan(value):
                n = _insert_sorted(buffer, n, value)
        if n == 0 or n < min_count:
            return math.nan
        return (buffer[(n - 1) // 2] + buffer[n // 2]) / 2.0
    first = arrays[0][i]
    low = high = first
    total = 0.0 if math.isnan(first) else first
    count = 0 if math.isnan(first) else 1
    for a in range(1, k):
        value = arrays[a][i]
        # np.fmin / np.fmax: a NaN loses to a number.
        if math.isnan(low) or value < low:
            low = value if not math.isnan(value) else low
        if math.isnan(high) or value > high:
            high = value if not math.isnan(value) else high
        if not math.isnan(value):
            total = total + value
            count += 1
        else:
            total = total + 0.0
    if count < min_count or count == 0:
        return math.nan
    if count == 3:
        return total - low - high
    return (low + high) / 2.0


@numba.njit(cache=True, nogil=True, inline="always")
def _median_where(arrays, i: int, where: np.ndarray, buffer: np.ndarray, min_count: int) -> float:  # noqa: ANN001
    """_median_at with arrays[a][i] taken as NaN where not where[a] (a copy of its arithmetic in the same order:
    _median_at reading every array is the faster for median_of_few)."""
    k = len(arrays)
    if k > 3:
        # nanmedian_first_axis: sorted (NaN last), the mean of the two middle finite values.
        n = 0
        for a in range(k):
            value = arrays[a][i] if where[a] else math.nan
            if not math.isnan(value):
                n = _insert_sorted(buffer, n, value)
        if n == 0 or n < min_count:
            return math.nan
        return (buffer[(n - 1) // 2] + buffer[n // 2]) / 2.0
    first = arrays[0][i] if where[0] else math.nan
    low = high = first
    total = 0.0 if math.isnan(first) else first
    count = 0 if math.isnan(first) else 1
    for a in range(1, k):
        value = arrays[a][i] if where[a] else math.nan
        # np.fmin / np.fmax: a NaN loses to a number.
        if math.isnan(low) or value < low:
            low = value if not math.isnan(value) else low
        if math.isnan(high) or value > high:
            high = value if not math.isnan(value) else high
        if not math.isnan(value):
            total = total + value
            count += 1
        else:
            total = total + 0.0
    if count < min_count or count == 0:
        return math.nan
    if count == 3:
        return total - low - high
    return (low + high) / 2.0


@numba.njit(cache=True, nogil=True)
def median_of_few(arrays, min_count: int, out: np.ndarray) -> None:  # noqa: ANN001
    """base.median_of_few over a tuple of same-size 1-D float arrays into out (1-D)."""
    buffer = np.empty(len(arrays))
    for i in range(out.size):
        out[i] = _median_at(arrays, i, buffer, min_count)


@numba.njit(cache=True, nogil=True)
def day_type_profile(same, anyday, min_count: int, out: np.ndarray) -> None:  # noqa: ANN001
    """seasonal.day_type_profile with the tie-break (same: two arrays or more, anyday: min_count or more),
    tuples of same-size 1-D float arrays, into out (1-D)."""
    buffer = np.empty(max(len(same), len(anyday)))
    for i in range(out.size):
        profile = _median_at(same, i, buffer, min_count)
        count = 0
        low = high = same[0][i]
        for a in range(len(same)):
            value = same[a][i]
            if not math.isnan(value):
                count += 1
                if math.isnan(low) or value < low:
                    low = value
                if math.isnan(high) or value > high:
                    high = value
        if count == 2:
            whole = _median_at(anyday, i, buffer, min_count)
            # near: the all-days profile nearer to one of the two than they are to each other (False if NaN).
            if min(abs(whole - low), abs(whole - high)) < high - low:
                profile = min(max(whole, low), high)
        out[i] = profile


@numba.njit(cache=True, nogil=True)
def day_type_profile_of_lags(same, same_lags: np.ndarray, anyday, tiebreak: bool, min_count: int, t: np.ndarray,
                             day_off: np.ndarray, first_day: int, offset_ms: int, day_ms: int,
                             out: np.ndarray) -> None:  # noqa: ANN001
    """seasonal.day_type_profile (with the tie-break where `tiebreak`, else median_of_few of `same`) of lags'
    found readings (tuples of (S * T,) float arrays: lag_lookup's (S, T) `found`, flat) before their day-type
    masks: same[a]'s reading counts where the reading's local day (t (T,), a fixed UTC offset) and the day
    same_lags[a] days before it are of one type in day_off (lag_lookup's table), else it is NaN, as in the masked
    copies the profile read before; the same arithmetic in the same order, into out (S, T)."""
    n_times = out.shape[1]
    k = len(same)
    buffer = np.empty(max(k, len(anyday)))
    kind = np.empty(k, dtype=np.bool_)
    everyday = np.ones(len(anyday), dtype=np.bool_)
    for s in range(out.shape[0]):
        day_start = 1
        day_end = 0  # [day_start, day_end): the UTC ms of the reading's local day (empty: none yet)
        for i in range(n_times):
            at = s * n_times + i
            ti = t[i]
            if not (day_start <= ti < day_end):
                day = (ti + offset_ms) // day_ms
                day_start = day * day_ms - offset_ms
                day_end = day_start + day_ms
                for a in range(k):
                    kind[a] = day_off[day - same_lags[a] - first_day] == day_off[day - first_day]
            profile = _median_where(same, at, kind, buffer, min_count)
            if tiebreak:
                count = 0
                low = high = same[0][at] if kind[0] else math.nan
                for a in range(k):
                    value = same[a][at] if kind[a] else math.nan
                    if not math.isnan(value):
                        count += 1
                        if math.isnan(low) or value < low:
                            low = value
                        if math.isnan(high) or value > high:
                            high = value
                if count == 2:
                    whole = _median_where(anyday, at, everyday, buffer, min_count)
                    # near: the all-days profile nearer to one of the two than they are to each other.
                    if min(abs(whole - low), abs(whole - high)) < high - low:
                        profile = min(max(whole, low), high)
            out[s, i] = profile


@numba.njit(cache=True, nogil=True, inline="always")
def _all_in_reach(t: np.ndarray, half: int, reach: float) -> bool:
    """Whether every sample's neighbours up to `half` samples away are within `reach` of it: the row regular (every
    step the same) and `half` steps within reach. The same test as running_median's for each neighbour: the
    farthest neighbour of every sample is as far as t[half] from t[0]."""
    if t.size <= half:
        return False
    step = t[1] - t[0]
    for i in range(1, t.size):
        if t[i] - t[i - 1] != step:
            return False
    return abs(t[half] - t[0]) <= reach


@numba.njit(cache=True, nogil=True, inline="always")
def _regular_running_median(x: np.ndarray, half: int, buffer: np.ndarray, median: np.ndarray) -> None:
    """running_median's median of one series whose neighbours are all within reach (_all_in_reach), the window
    slid along instead of sorted afresh: the reading leaving it taken out, the one entering inserted. The same
    sorted values, bit for bit: equal values (0.0 and -0.0) stay in time order in both (an insertion goes after
    its equals; the one leaving is the window's oldest, the first of its equals)."""
    n_times = x.size
    n = 0
    for at in range(min(half, n_times - 1) + 1):
        if not math.isnan(x[at]):
            n = _insert_sorted(buffer, n, x[at])
    for i in range(n_times):
        if i > 0:
            leaving = i - half - 1
            if leaving >= 0 and not math.isnan(x[leaving]):
                m = 0
                while buffer[m] != x[leaving]:
                    m += 1
                for j in range(m, n - 1):
                    buffer[j] = buffer[j + 1]
                n -= 1
            entering = i + half
            if entering <= n_times - 1 and not math.isnan(x[entering]):
                n = _insert_sorted(buffer, n, x[entering])
        median[i] = (buffer[(n - 1) // 2] + buffer[n // 2]) / 2.0 if n > 0 else math.nan


@numba.njit(cache=True, nogil=True)
def running_median(x: np.ndarray, t: np.ndarray, reach: np.ndarray, half: int, median: np.ndarray,
                   latest: np.ndarray) -> None:
    """seasonal._running_median for x (S, T) and t (R, T), R 1 (one time row for all) or S, reach (R,) the
    largest distance in time of a neighbour: median (S, T) of the reading and the usable neighbours within
    `half` samples either side (NaN ignored), latest (R, T) the latest time among the reading and its
    usable later neighbours."""
    n_series, n_times = x.shape
    rows = t.shape[0]
    buffer = np.empty(2 * half + 1)
    regular = np.empty(rows, dtype=np.bool_)
    for r in range(rows):
        regular[r] = _all_in_reach(t[r], half, reach[r])
        for i in range(n_times):
            if regular[r]:  # the latest of t[i .. i + half], the row not decreasing
                latest[r, i] = t[r, min(i + half, n_times - 1)]
                continue
            newest = t[r, i]
            for offset in range(1, half + 1):
                at = i + offset
                if at <= n_times - 1 and abs(t[r, at] - t[r, i]) <= reach[r]:
                    newest = max(newest, t[r, at])
            latest[r, i] = newest
    for s in range(n_series):
        r = min(s, rows - 1)
        if regular[r]:
            _regular_running_median(x[s], half, buffer, median[s])
            continue
        for i in range(n_times):
            n = 0
            for offset in range(-half, half + 1):
                at = i + offset
                if offset != 0 and (at < 0 or at > n_times - 1 or not abs(t[r, at] - t[r, i]) <= reach[r]):
                    continue
                value = x[s, at]
                if math.isnan(value):
                    continue
                n = _insert_sorted(buffer, n, value)
            median[s, i] = (buffer[(n - 1) // 2] + buffer[n // 2]) / 2.0 if n > 0 else math.nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def take_better(x: np.ndarray, profile: np.ndarray, fit_expected: np.ndarray, fit_scale: np.ndarray,
                fit_z: np.ndarray, expected: np.ndarray, scale: np.ndarray, z: np.ndarray, plain_z: np.ndarray,
                out_profile: np.ndarray) -> None:
    """seasonal_baseline's choice of one period's profile, in place, in one pass over the (S, T) arrays: where
    the fit's z is finite and its scale is not above the kept one (NaN kept: taken), expected = profile +
    fit_expected, scale, z, plain_z = (x - profile) / fit_scale and the profile itself are this period's.
    The same operations as its np.where's (numpy's division by 0: inf or NaN)."""
    n_series, n_times = x.shape
    for s in range(n_series):
        for i in range(n_times):
            fz = fit_z[s, i]
            fs = fit_scale[s, i]
            if math.isinf(fz) or math.isnan(fz) or scale[s, i] <= fs:
                continue
            p = profile[s, i]
            expected[s, i] = p + fit_expected[s, i]
            scale[s, i] = fs
            z[s, i] = fz
            plain_z[s, i] = (x[s, i] - p) / fs
            out_profile[s, i] = p



@numba.njit(cache=True, nogil=True, error_model="numpy")
def take_first(x: np.ndarray, profile: np.ndarray, fit_expected: np.ndarray, fit_scale: np.ndarray,
               fit_z: np.ndarray, expected: np.ndarray, scale: np.ndarray, z: np.ndarray, plain_z: np.ndarray,
               out_profile: np.ndarray) -> None:
    """take_better into outputs that hold nothing yet (all NaN: every finite fit is taken), writing every element:
    the first period's choice without filling five arrays with NaN first (the same bits as take_better there)."""
    n_series, n_times = x.shape
    for s in range(n_series):
        for i in range(n_times):
            fz = fit_z[s, i]
            if math.isinf(fz) or math.isnan(fz):
                expected[s, i] = scale[s, i] = z[s, i] = plain_z[s, i] = out_profile[s, i] = math.nan
                continue
            p = profile[s, i]
            fs = fit_scale[s, i]
            expected[s, i] = p + fit_expected[s, i]
            scale[s, i] = fs
            z[s, i] = fz
            plain_z[s, i] = (x[s, i] - p) / fs
            out_profile[s, i] = p


@numba.njit(cache=True, nogil=True, inline="always")
def _sample_at(t: np.ndarray, i: int, wanted: float, j: int, behind: int, tolerance: float,
               on_target: bool) -> tuple[int, int, bool, int]:
    """lag_lookup's search for reading i's target `wanted`: the sample `behind` rows back tried first, taken where
    it lies exactly on the target with the next sample after it (where the walk would end), else the walk on from
    j (the last index with t[j] <= target, -1 if none). Returns (j, the nearest sample, whether it is within
    tolerance, behind)."""
    last = t.size - 1
    guess = i - behind
    if 0 <= guess < last and t[guess] == wanted and t[guess + 1] > wanted:
        return guess, guess, on_target, behind
    while j + 1 < t.size and t[j + 1] <= wanted:
        j += 1
    while j >= 0 and t[j] > wanted:
        j -= 1
    after = min(j + 1, last)
    nearest = after if j < 0 or t[after] - wanted < wanted - t[max(j, 0)] else j
    return j, nearest, abs(t[nearest] - wanted) <= tolerance, i - j


@numba.njit(cache=True, nogil=True)
def lag_lookup(t: np.ndarray, back: int, tolerance: float, index: np.ndarray, search: bool, keep_index: bool,
               smooth: np.ndarray, latest: np.ndarray, half: int, x: np.ndarray,
               found: np.ndarray, day_types: bool, lag_days: int, day_off: np.ndarray,
               first_day: int, offset_ms: int, day_ms: int) -> tuple[bool, bool, bool]:
    """lag_found with the targets t - back (a fixed UTC offset: _same_local_time moves nothing) and, with
    day_types (back a whole number lag_days of days), whether any target is of the reading's day type: the
    reading's local day and the day lag_days before it both days off or both not in day_off (a table of the local
    days from first_day; day_type_profile_of_lags masks the found readings by it). The same values as lag_found
    and _is_day_off of each target, without the arrays of targets, close flags and day types. Returns (any target
    close, any close target of the same type, any reading found (not NaN) in any series).
    index (T,) int32: with search and keep_index, each target's nearest sample where close, else -1, is written
    there; without search it is read from there (a call on the same times, back and tolerance before: the
    profile's usual error looks up the lags the profile looked up), and no search is done.
    half: the running median's half width (latest[i] is at most t[i + half], t not decreasing), so where
    t[nearest + half] is before the reading, latest is not read (the same choice, one stream of memory less)."""
    n = t.size
    last = n - 1
    j = -1  # the last index with t[j] <= target, -1 if none
    # On a regular stretch the target's sample is as many rows back as the last one's: tried first, and taken
    # where it lies exactly on the target with the next sample after it, where the walk below would end (the same
    # index; ~3x less time a call on a regular file, bench_lag_lookup.py). behind: i - j of the last walk.
    behind = 0
    on_target = tolerance >= 0.0  # a sample exactly on its target is close (the walk's test at distance 0)
    rows = latest.shape[0]
    any_close = any_same = any_found = False
    same = True
    day_start = 1
    day_end = 0  # [day_start, day_end): the UTC ms of the reading's local day (empty: none yet)
    # A tile of times at a time: what depends on the times only, once a time, then each series along its row
    # in that tile. The rows are C-ordered: walking the series for each time read a cache line a value (0.8
    # of 1.9 s of score_series on 2,000 series of five days at five minutes); a small tile keeps a one-series
    # file of a million rows from three arrays of a million.
    if x.shape[0] == 1:
        # One series (a city score file): each reading looked up and written where its target is found, no tile.
        for i in range(n):
            ti = t[i]
            if search:
                j, nearest, near, behind = _sample_at(t, i, ti - back, j, behind, tolerance, on_target)
                if keep_index:
                    index[i] = nearest if near else -1
            else:
                nearest = index[i]
                near = nearest >= 0
            if day_types and not (day_start <= ti < day_end):
                day = (ti + offset_ms) // day_ms
                day_start = day * day_ms - offset_ms
                day_end = day_start + day_ms
                same = day_off[day - lag_days - first_day] == day_off[day - first_day]
            if near:
                any_close = True
                if same and day_types:
                    any_same = True
                if t[min(nearest + half, last)] < ti or latest[0, nearest] < ti:
                    value = smooth[0, nearest]
                else:
                    value = x[0, nearest]
                if not math.isnan(value):
                    any_found = True
            else:
                value = math.nan
            found[0, i] = value
        return any_close, any_same, any_found
    tile = max(min(n, TILE), 1)
    nearest_at = np.empty(tile, dtype=np.int64)  # -1: no sample close to the target
    settled_at = np.empty(tile, dtype=np.bool_)
    for begin in range(0, n, tile):
        stop = min(begin + tile, n)
        for i in range(begin, stop):
            ti = t[i]
            if search:
                j, nearest, near, behind = _sample_at(t, i, ti - back, j, behind, tolerance, on_target)
                if keep_index:
                    index[i] = nearest if near else -1
            else:
                nearest = index[i]
                near = nearest >= 0
            if near:
                any_close = True
            if day_types:
                if not (day_start <= ti < day_end):
                    day = (ti + offset_ms) // day_ms
                    day_start = day * day_ms - offset_ms
                    day_end = day_start + day_ms
                    # The target's local day is lag_days before the reading's (whole days at a fixed offset).
                    same = day_off[day - lag_days - first_day] == day_off[day - first_day]
                if near and same:
                    any_same = True
            nearest_at[i - begin] = nearest if near else -1
            settled_at[i - begin] = near and t[min(nearest + half, last)] < ti
        for s in range(x.shape[0]):
            row = min(s, rows - 1)
            for i in range(begin, stop):
                nearest = nearest_at[i - begin]
                if nearest < 0:
                    value = math.nan
                elif settled_at[i - begin] or latest[row, nearest] < t[i]:
                    value = smooth[s, nearest]
                else:
                    value = x[s, nearest]
                if not math.isnan(value):
                    any_found = True
                found[s, i] = value
    return any_close, any_same, any_found


@numba.njit(cache=True, nogil=True, error_model="numpy")
def mean_error_near(residual: np.ndarray, expected: np.ndarray, width: int, out: np.ndarray) -> None:
    """_scale_by_time_of_day's mean of the known |residual - expected| (S, T) over the `width` samples centred on
    each (from index - width // 2), NaN where none is known; `width` >= 1.

    The bits of _scale_numpy's steps: scipy.ndimage.uniform_filter1d(mode="constant") of the errors (0.0 where
    unknown) over that of where they are known (1.0, else 0.0). Each is scipy's running mean, reproduced step by
    step: a running sum (the first window's, then + entering - leaving a sample; 0.0 outside the row) divided by
    width at each sample. Here, not scipy: its import was ~0.2-0.4 s of every `city score`."""
    n_series, n_times = residual.shape
    before = width // 2
    error = np.zeros(n_times + width - 1)  # the row padded with width // 2 zeros before it, the rest after
    known = np.zeros(n_times + width - 1)
    for s in range(n_series):
        for i in range(n_times):
            value = abs(residual[s, i] - expected[s, i])
            unknown = math.isnan(value)
            error[before + i] = 0.0 if unknown else value
            known[before + i] = 0.0 if unknown else 1.0
        total = 0.0
        count = 0.0
        for i in range(width):
            total += error[i]
            count += known[i]
        for i in range(n_times):
            if i:
                total += error[i + width - 1] - error[i - 1]
                count += known[i + width - 1] - known[i - 1]
            mean_count = count / width
            out[s, i] = (total / width) / mean_count if mean_count > 0 else math.nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def z_where_fit(residual: np.ndarray, expected: np.ndarray, scale: np.ndarray, fit_z: np.ndarray,
                out: np.ndarray) -> None:
    """np.where(np.isnan(fit_z), nan, (residual - expected) / scale) in one pass (numpy's division)."""
    n_series, n_times = residual.shape
    for s in range(n_series):
        for i in range(n_times):
            out[s, i] = math.nan if math.isnan(fit_z[s, i]) else (residual[s, i] - expected[s, i]) / scale[s, i]
