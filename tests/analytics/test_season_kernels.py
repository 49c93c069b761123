"""The compiled look-ups and medians of the daily/weekly profile (detectors/season_kernels.py) give what the
whole-array numpy code they replaced gives, on awkward inputs: NaN, ties, signed zeros, duplicate and
irregular times, targets in any order and outside the series, one time row shared or one per series."""

import dataclasses

import numpy as np
import pytest

from analytics.config import CSV_PARAMS, DAY_MS, DEFAULT_PARAMS
from analytics.detectors import base, season_kernels, seasonal
from analytics.localtime import to_local

MINUTE = 60_000


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Rounded to a few levels (ties), with NaN and zeros of both signs."""
    x = np.round(rng.normal(0, 2, shape))
    # And continuous values of very different sizes, where the order of a sum changes its last bits.
    wide = rng.random(shape) < 0.5
    x[wide] = rng.normal(0, 1, wide.sum()) * 10.0 ** rng.integers(-3, 17, wide.sum())
    x[rng.random(shape) < 0.2] = np.nan
    x[rng.random(shape) < 0.05] = -0.0
    return x


def _times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Irregular, with repeats and gaps."""
    steps = rng.choice([0, MINUTE, MINUTE, 5 * MINUTE, 3 * DAY_MS // 7], size=n)
    return 1_735_689_600_000 + np.cumsum(steps).astype(np.int64)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    """The same values, NaN where the other is NaN. A zero's sign is not compared: numpy's own np.fmin(0.0,
    -0.0) is -0.0 in an array of 40 and 0.0 in an array of one (its SIMD and scalar loops differ)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_lag_found_is_the_numpy_lookup(seed):
    rng = np.random.default_rng(seed)
    # The last two span several of the kernel's tiles of times (one tile, then each series along it).
    n = int(rng.integers(1, 400)) if seed < 4 else int(rng.integers(2 * season_kernels.TILE, 3 * season_kernels.TILE))
    t = _times(rng, n)
    x = _values(rng, (3, n))
    smooth = _values(rng, (3, n))
    latest = t[None] + rng.choice([-MINUTE, 0, MINUTE], size=(3, n))
    # Targets a lag back, ahead, half-way between two readings (the tie goes to the later one), in any order.
    for target in (t - DAY_MS, t - 7 * DAY_MS, t + MINUTE, t + MINUTE // 2, rng.permutation(t - DAY_MS // 3),
                   rng.integers(t[0] - DAY_MS, t[-1] + DAY_MS, n)):
        for tolerance in (30_000.0, 0.0, float(DAY_MS), np.nan):
            for late in (latest, latest[:1]):
                found, close = np.empty(x.shape), np.empty(n, dtype=bool)
                season_kernels.lag_found(t, target, tolerance, smooth, late, x, found, close)
                want_found, want_close = seasonal._lag_found_numpy(t, target, tolerance, smooth, late, x)
                _same(close, want_close)
                np.testing.assert_array_equal(found, want_found)


@pytest.mark.parametrize("count", range(1, 8))
def test_median_of_few_is_the_numpy_median(count):
    rng = np.random.default_rng(count)
    arrays = [_values(rng, (4, 250)) for _ in range(count)]
    for min_count in (1, 2, 3):
        _same(base.median_of_few(arrays, min_count), base._median_of_few_numpy(arrays, min_count))
    # Mixed shapes still broadcast as numpy does.
    mixed = [arrays[0], arrays[0][:1]]
    _same(base.median_of_few(mixed, 1), base._median_of_few_numpy(mixed, 1))


@pytest.mark.parametrize("count", range(2, 8))
def test_day_type_profile_is_the_numpy_tie_break(count):
    rng = np.random.default_rng(10 + count)
    same = [_values(rng, (2, 300)) for _ in range(count)]
    anyday = [_values(rng, (2, 300)) for _ in range(3)]
    # Two close days and an all-days profile between, near or far: each branch of the tie-break.
    same[0][:, :100], same[1][:, :100] = 1.0, 3.0
    anyday[0][:, :50] = anyday[1][:, :50] = 2.5
    got = seasonal.day_type_profile(same, anyday, DEFAULT_PARAMS)
    _same(got, seasonal._day_type_profile_numpy(same, anyday, DEFAULT_PARAMS))
    assert np.isfinite(got).any()


@pytest.mark.parametrize("half", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_running_median_is_the_numpy_median(half, seed):
    rng = np.random.default_rng(seed)
    n = 300
    t = _times(rng, n)
    x = _values(rng, (4, n))
    shared = seasonal._running_median(x, t[None], 30_000.0, half)
    want = seasonal._running_median_numpy(x, t[None], 30_000.0, half)
    _same(shared[0], want[0])
    _same(shared[1], want[1])
    # Regular times (running_median's sliding window where every neighbour is within reach), one row irregular.
    regular = MINUTE * np.arange(n, dtype=np.int64)
    for times in (regular, regular + 7):
        _same(seasonal._running_median(x, times[None], MINUTE / 2, half)[0],
              seasonal._running_median_numpy(x, times[None], MINUTE / 2, half)[0])
    own_t = np.stack([t, t + MINUTE, _times(rng, n), regular])
    tolerance = np.array([[30_000.0], [np.nan], [120_000.0], [MINUTE / 2]])
    own = seasonal._running_median(x, own_t, tolerance, half)
    want = seasonal._running_median_numpy(x, own_t, tolerance, half)
    _same(own[0], want[0])
    _same(own[1], want[1])


def test_day_off_by_table_is_the_day_off_of_each_reading():
    params = CSV_PARAMS.__class__(days_off=(20_089, 20_100), time_zone="Europe/Berlin")
    for p in (CSV_PARAMS, params):
        t = _times(np.random.default_rng(3), 5_000)
        for moments in (t, t - 3 * DAY_MS, np.concatenate([t[:10], t[:10] + 10_000 * DAY_MS])):
            want = seasonal._day_off(to_local(moments, p.time_zone, p.utc_offset_h) // DAY_MS, p)
            _same(seasonal._is_day_off(moments, p), want)
        assert seasonal._is_day_off(t, p).any() and not seasonal._is_day_off(t, p).all()


def _bits(a: np.ndarray) -> np.ndarray:
    """The float64 bits (a zero's sign and all), every NaN as one value."""
    return np.where(np.isnan(a), np.nan, a).view(np.int64)


@pytest.mark.parametrize("seed", range(3))
def test_take_better_is_the_numpy_choice(seed):
    rng = np.random.default_rng(seed)
    shape = (3, 400)
    x, profile, fit_expected = _values(rng, shape), _values(rng, shape), _values(rng, shape)
    fit_scale, fit_z = np.abs(_values(rng, shape)), _values(rng, shape)
    fit_scale[rng.random(shape) < 0.05] = 0.0  # x - profile over 0: inf or NaN, as numpy gives
    fit_z[rng.random(shape) < 0.05] = np.inf
    kept = [_values(rng, shape) for _ in range(5)]
    kept[1] = np.abs(kept[1])
    out = [a.copy() for a in kept]
    season_kernels.take_better(x, profile, fit_expected, fit_scale, fit_z, *out)
    better = np.isfinite(fit_z) & ~(kept[1] <= fit_scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = [np.where(better, profile + fit_expected, kept[0]), np.where(better, fit_scale, kept[1]),
                np.where(better, fit_z, kept[2]), np.where(better, (x - profile) / fit_scale, kept[3]),
                np.where(better, profile, kept[4])]
    for got, expected in zip(out, want, strict=True):
        np.testing.assert_array_equal(_bits(got), _bits(expected))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("zone", [{}, {"utc_offset_h": 7}, {"utc_offset_h": -5, "days_off": (20093, 20094, 20101)},
                                  {"time_zone": "Asia/Jakarta"}, {"day_types": False}, {"profile_smooth_samples": 0}])
@pytest.mark.parametrize("period", [DAY_MS, 7 * DAY_MS])
@pytest.mark.parametrize("series", [1, 2])
def test_lag_lookup_is_the_lookup_of_each_series(seed, zone, period, series):
    """The shared-times path (season_kernels.lag_lookup: targets, look-up and day-type mask in one pass, one
    day-off table; one series without the tile, a city score file's) against the per-series path (arrays of
    targets, searches, each target's local day and _is_day_off), the same bits, on irregular times spanning
    weeks."""
    from dataclasses import replace

    rng = np.random.default_rng(40 + seed)
    n = 3000
    t = 1_735_689_600_000 + np.cumsum(rng.choice([MINUTE, 7 * MINUTE, 2 * 3_600_000, DAY_MS // 3], size=n))
    t = t.astype(np.int64)
    x = _values(rng, (2, n))[:series]
    params = replace(CSV_PARAMS, **zone)
    shared = seasonal.seasonal_expected(x, t, period, params)
    own = seasonal.seasonal_expected(x, np.stack([t] * series), period, params)
    assert shared.tobytes() == own.tobytes()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("series", [1, 2])
def test_lag_lookup_on_regular_stretches_with_repeats_gaps_and_jitter_is_the_lookup_of_each_series(seed, series):
    """lag_lookup first tries the sample as many rows back as the last target's (a regular stretch) and takes it
    where it lies exactly on the target with a later sample after it: the same bits as the per-series search on
    times of five-minute stretches broken by repeated times (a target on the first or the last of a repeat), gaps,
    jittered readings and one step back in the rows."""
    rng = np.random.default_rng(90 + seed)
    n = 6000
    steps = rng.choice([5 * MINUTE, 0, 37 * MINUTE, 5 * MINUTE + 7_000, 5 * MINUTE - 7_000],
                       p=[0.9, 0.04, 0.02, 0.02, 0.02], size=n)
    t = (1_735_689_600_000 + np.cumsum(steps)).astype(np.int64)
    x = _values(rng, (2, n))[:series]
    for period in (DAY_MS, 7 * DAY_MS):
        shared = seasonal.seasonal_expected(x, t, period, CSV_PARAMS)
        own = seasonal.seasonal_expected(x, np.stack([t] * series), period, CSV_PARAMS)
        assert shared.tobytes() == own.tobytes()
        assert np.isfinite(shared).mean() > (0.5 if period == DAY_MS else 0.2)  # the look-ups found samples


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("zone", [{}, {"utc_offset_h": 7}, {"day_types": False}])
@pytest.mark.parametrize("series", [1, 2])
def test_baseline_with_kept_lookups_is_the_baseline_of_each_series(seed, zone, series):
    """seasonal_baseline on shared times (each lag's nearest samples searched for the profile and kept for the
    profile's usual error, which only gathers) against the per-series path, the same bits."""
    from dataclasses import replace

    rng = np.random.default_rng(70 + seed)
    n = 4000
    t = 1_735_689_600_000 + np.cumsum(rng.choice([MINUTE, 7 * MINUTE, 3_600_000, DAY_MS // 5], size=n))
    t = t.astype(np.int64)
    x = (np.sin(np.arange(n) / 40.0)[None] * 10 + _values(rng, (2, n)) * 0.1)[:series]
    params = replace(CSV_PARAMS, **zone)
    shared = seasonal.seasonal_baseline(x, t, params)
    own = seasonal.seasonal_baseline(x, np.stack([t] * series), params)
    for field in ("expected", "scale", "z", "plain_z", "profile"):
        assert getattr(shared, field).tobytes() == getattr(own, field).tobytes(), field


@pytest.mark.parametrize("seed", range(3))
def test_scale_by_time_of_day_is_its_numpy_steps(seed):
    """_scale_by_time_of_day's compiled passes (season_kernels.mean_error_near, z_where_fit) give
    the bits of its numpy steps (seasonal._scale_numpy): NaN, zeros of both signs, values of very different sizes,
    scales of 0 (inf or NaN, as numpy divides)."""
    rng = np.random.default_rng(700 + seed)
    n = 3 * 1440
    times = 1_735_689_600_000 + np.arange(n, dtype=np.int64) * MINUTE
    shape = (2, n)
    residual = _values(rng, shape)
    fit = base.Baseline(_values(rng, shape), np.abs(_values(rng, shape)), _values(rng, shape))
    fit.scale[rng.random(shape) < 0.05] = 0.0
    step = float(MINUTE)
    got = seasonal._scale_by_time_of_day(residual, fit, times, DAY_MS, step, CSV_PARAMS)
    width = int(min(max(1, round(CSV_PARAMS.profile_scale_window_ms / step)), n))
    local, _, _ = seasonal._scale_numpy(residual, fit, None, width, CSV_PARAMS.mad_to_sigma)
    as_is = dataclasses.replace(CSV_PARAMS, profile_smooth_samples=0)
    usual = seasonal.seasonal_expected(local, times, DAY_MS, as_is)
    factor = CSV_PARAMS.mad_to_sigma * CSV_PARAMS.profile_usual_share
    _, scale, z = seasonal._scale_numpy(residual, fit, usual, width, factor)
    np.testing.assert_array_equal(_bits(got.scale), _bits(scale))
    np.testing.assert_array_equal(_bits(got.z), _bits(z))
    assert got.expected is fit.expected


@pytest.mark.parametrize("seed", range(4))
def test_mean_error_near_is_scipys_running_means(seed):
    """season_kernels.mean_error_near gives the bits of scipy.ndimage.uniform_filter1d's running means (the known
    errors over where they are known) for windows of 1, 2, odd, even, half the row and the whole row: NaN, infinite
    errors (the running sum NaN from there on, as scipy's), values of very different sizes, rows of one sample."""
    from scipy.ndimage import uniform_filter1d

    rng = np.random.default_rng(900 + seed)
    n = (1, 17, 700, 3000)[seed]
    residual, expected = _values(rng, (3, n)), _values(rng, (3, n))
    if seed == 2:
        residual[rng.random((3, n)) < 0.01] = np.inf
    for width in sorted({1, 2, 3, 4, 7, 60, 61, max(1, n // 2), n}):
        width = min(width, n)
        error = np.abs(residual - expected)
        known = ~np.isnan(error)
        total = uniform_filter1d(np.where(known, error, 0.0), size=width, axis=1, mode="constant")
        count = uniform_filter1d(known.astype(np.float64), size=width, axis=1, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            want = np.where(count > 0, total / count, np.nan)
        got = np.empty((3, n))
        season_kernels.mean_error_near(residual, expected, width, got)
        np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"width {width}")


@pytest.mark.parametrize("seed", range(3))
def test_take_first_is_take_better_into_nothing(seed):
    """season_kernels.take_first (every element written) gives take_better's bits into outputs all NaN."""
    rng = np.random.default_rng(800 + seed)
    shape = (3, 400)
    x, profile, fit_expected = _values(rng, shape), _values(rng, shape), _values(rng, shape)
    fit_scale, fit_z = np.abs(_values(rng, shape)), _values(rng, shape)
    fit_scale[rng.random(shape) < 0.05] = 0.0
    fit_z[rng.random(shape) < 0.05] = np.inf
    fit_z[rng.random(shape) < 0.05] = -np.inf
    better = [np.full(shape, np.nan) for _ in range(5)]
    first = [np.full(shape, 7.0) for _ in range(5)]  # whatever was there: every element is written
    season_kernels.take_better(x, profile, fit_expected, fit_scale, fit_z, *better)
    season_kernels.take_first(x, profile, fit_expected, fit_scale, fit_z, *first)
    for got, expected in zip(first, better, strict=True):
        np.testing.assert_array_equal(_bits(got), _bits(expected))


def test_one_compiled_lag_lookup_serves_the_smoothed_and_the_plain_profile():
    """`city score` reads the lagged readings twice, through the running median (the profile) and without it (the
    usual error's profile, profile_smooth_samples 0): its `latest` times are then the running median's or the
    shared time row itself, read-only. Both are of one flag, so numba loads one lag_lookup, not two (~4 ms of the
    start); the values are the same either way."""
    rng = np.random.default_rng(11)
    n = 3 * 1440
    t = np.broadcast_to(1_735_689_600_000 + np.arange(n, dtype=np.int64) * MINUTE, (2, n))[:1]
    x = rng.normal(0, 1, (2, n))
    plain = seasonal._running_median(x, t, 30_000.0, 0)[1]
    smooth = seasonal._running_median(x, t, 30_000.0, 3)[1]
    assert plain.flags.writeable == smooth.flags.writeable == t.flags.writeable
