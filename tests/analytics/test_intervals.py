"""The sampling intervals score_series reads (base.sampling_intervals_ms: the typical and the long interval from
one set of steps, once a block) are the values of numpy's nanmedian and nanquantile over the positive steps, as
typical_interval_ms and long_interval_ms computed them one by one; and a profile given them is the profile that
computes them itself."""

import math
import warnings

import numpy as np
import pytest

from analytics.config import CSV_PARAMS, DEFAULT_PARAMS
from analytics.detectors.base import (
    History,
    long_interval_ms,
    median_interval_ms,
    sampling_intervals_ms,
    typical_interval_ms,
)
from analytics.detectors.seasonal import seasonal_baseline

MINUTE = 60_000
DAY = 1440 * MINUTE


def _numpy_quantile(times: np.ndarray, q: float) -> np.ndarray:
    """Each row's q-quantile of its positive steps, NaN-aware, as numpy gives it (the code before the one pass)."""
    if times.shape[1] < 2:
        return np.full(times.shape[0], np.nan)
    steps = np.diff(times, axis=1).astype(np.float64)
    steps[steps <= 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(steps, axis=1) if q == 0.5 else np.nanquantile(steps, q, axis=1)


def _times(kind: str, series: int, n: int, rng: np.random.Generator) -> np.ndarray:
    regular = np.tile(MINUTE * np.arange(n, dtype=np.int64), (series, 1))
    if kind == "regular":
        return regular
    if kind == "regular_float":
        return (7 * regular // MINUTE + 5).astype(np.float64)
    if kind == "one_late":  # one step a millisecond longer: no longer regular
        regular[:, n // 2:] += 1
        return regular
    if kind == "duplicates":  # every time twice: half the steps are 0 (not intervals)
        return np.repeat(regular[:, : (n + 1) // 2], 2, axis=1)[:, :n]
    if kind == "constant":
        return np.zeros((series, n), dtype=np.int64)
    if kind == "two_rates":  # each row regular, but at its own rate
        return regular * (1 + np.arange(series))[:, None]
    return np.sort(rng.integers(0, 10**9, (series, n)), axis=1)  # irregular


def _identical(a: np.ndarray | float, b: np.ndarray | float) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("kind", ["regular", "regular_float", "one_late", "duplicates", "constant", "two_rates",
                                  "irregular"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 600, 601, 1001])
def test_intervals_are_numpys_quantiles_of_the_steps(kind: str, n: int) -> None:
    rng = np.random.default_rng(n)
    for series in (0, 1, 3):
        times = _times(kind, series, n, rng)
        assert _identical(median_interval_ms(times), _numpy_quantile(times, 0.5))
        assert _identical(long_interval_ms(times), _numpy_quantile(times, 0.9))
        for given in (((times[0], times[:1]),) if series else ()) + ((times, times),):
            one_by_one = typical_interval_ms(given[0])
            median = _numpy_quantile(given[1], 0.5)
            assert _identical(one_by_one, float(np.nanmedian(median)) if np.isfinite(median).any() else math.nan)
            typical, long = sampling_intervals_ms(given[0])
            assert _identical(typical, one_by_one)
            assert _identical(long, _numpy_quantile(given[1].astype(np.int64), 0.9))


@pytest.mark.parametrize("case", ["shared", "own_rows", "history"])
def test_profile_given_the_intervals_is_the_profile_that_computes_them(case: str) -> None:
    rng = np.random.default_rng(3)
    n, series = 9 * 1440 + 77, 3
    # Irregular readings (a logger writing on events): whether a lag finds one depends on the tolerance.
    times = np.cumsum(rng.exponential(MINUTE, n)).astype(np.int64)
    x = 10 * np.sin(2 * np.pi * times / DAY)[None] + rng.normal(0, 1, (series, n))
    history = None
    if case == "own_rows":
        times = np.stack([times + i * 7 * MINUTE for i in range(series)])
    if case == "history":
        old = times[0] - DAY + MINUTE * np.arange(1440)
        history = History(rng.normal(0, 1, (series, 1440)), np.tile(old, (series, 1)), MINUTE)
    for params in (CSV_PARAMS, DEFAULT_PARAMS):
        step, long = sampling_intervals_ms(times)
        given = seasonal_baseline(x, times, params, history, step, long)
        alone = seasonal_baseline(x, times, params, history)
        for field in ("expected", "scale", "z", "plain_z", "profile"):
            assert _identical(getattr(given, field), getattr(alone, field))
