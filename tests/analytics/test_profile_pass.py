"""The one compiled pass of a block with a profile and without the point z (kernels.profile_pass,
combined._profile_pass) gives the same bits as the composition it replaced: robust_baseline, combined._widened
(kept where the profile's z is finite), cusum_sides_of_three, _combine (its numpy code) and calibrate. And the
CUSUM step that skips its factor at z 0 gives the bits of the step that computed it."""

import math
from dataclasses import replace

import numpy as np
import pytest

from analytics.config import CSV_PARAMS, DAY_MS, DetectorParams
from analytics.config import DEFAULT_PARAMS as P
from analytics.detectors import combined, kernels, score_series
from analytics.detectors.base import Anchor, Baseline, calibrate, typical_interval_ms
from analytics.detectors.drift import drift_evidence
from analytics.detectors.flatline import flatline_evidence
from analytics.detectors.level import robust_baseline
from analytics.detectors.seasonal import seasonal_baseline
from analytics.detectors.shift import cusum_sides, cusum_sides_of_three

MINUTE = 60_000


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _series(seed: int, rows: int = 9, days: int = 5, step_minutes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Daily curves with noise, a spike, a dip, a shift, a stuck stretch, gaps, a random walk, counts, a flat row."""
    rng = np.random.default_rng(seed)
    n = days * 1440 // step_minutes
    t = np.arange(n) * step_minutes * MINUTE
    curve = 10 * np.sin(2 * np.pi * np.arange(n) * step_minutes / 1440)
    x = curve[None] * rng.uniform(0.5, 2, (rows, 1)) + rng.normal(0, 1, (rows, n))
    x[0, n - 200] += 15
    x[1, n - 300] -= 12
    x[2, n // 2:] += 6
    x[3, n - 400:n - 250] = x[3, n - 401]
    x[4, rng.random(n) < 0.05] = np.nan
    x[4, 100:300] = np.nan
    x[5] = np.round(np.cumsum(rng.normal(0, 1, n)), 1)
    x[6] = rng.integers(0, 3, n)
    x[7] = 3.0
    x[8, : n // 3] = np.nan  # a series that starts late: no profile for most of it
    return x, t


def _composed(x: np.ndarray, times: np.ndarray, params: DetectorParams) -> tuple[combined.Scores, dict]:
    """The previous code of _score_block's branch with a profile and without the point z, step by step."""
    step = typical_interval_ms(times)
    season = seasonal_baseline(x, times, params, None, step)
    has = np.isfinite(season.z)
    recent = robust_baseline(x, params)
    if params.day_scale_floor > 0:
        recent = combined._widened(x, times, recent, has, params, step, None)
    sides = cusum_sides_of_three(recent.z, season.z, season.plain_z, params)
    flat = flatline_evidence(x, params)
    drift = drift_evidence(x - season.profile, season.scale, params)
    evidence, baseline, best, winner = combined._combine_numpy(season, recent, sides, flat, drift)
    scores = combined.Scores(evidence, calibrate(best, params), winner, baseline)
    scores.anchor = Anchor(season.profile, season.expected - season.profile, season.scale)
    return scores, {"season": season, "step": step, "flat": flat, "drift": drift}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("params", [P, CSV_PARAMS, replace(P, day_scale_floor=0.0),
                                    replace(P, warmup=3, huber_clip=1.5), replace(P, block_series=2)])
def test_profile_pass_is_the_numpy_composition(seed: int, params: DetectorParams) -> None:
    x, t = _series(seed)
    want, parts = _composed(x, t, params)
    assert np.isfinite(parts["season"].z).any() and np.isnan(parts["season"].z).any()
    got = combined._profile_pass(x, params, parts["season"], parts["step"], None)
    for name in ("expected", "scale", "z"):
        assert _same(getattr(got.baseline, name), getattr(want.baseline, name)), name
    assert _same(got.combined, want.combined) and _same(got.winner, want.winner)
    for name in ("profile", "bias", "scale"):
        assert _same(getattr(got.anchor, name), getattr(want.anchor, name)), name
    # The evidence the kernel writes only when asked (keep_evidence), against _combine's.
    season, shape = parts["season"], x.shape
    out = [np.empty(shape) for _ in range(4)] + [np.empty(shape, dtype=np.int8)] + [np.empty(shape) for _ in range(3)]
    step = parts["step"]
    k, h = params.cusum_k, params.cusum_h
    kernels.profile_pass(x, season.z, season.plain_z, season.scale, season.expected, parts["flat"], parts["drift"],
                         *out, params.level_alpha, params.scale_alpha, params.level_alpha * params.trend_beta,
                         params.warmup, params.huber_clip, params.mad_to_sigma, params.rel_scale_floor,
                         params.abs_scale_floor, params.day_scale_floor > 0, min(1.0, 4.0 * step / DAY_MS),
                         params.day_scale_floor, k, h, params.cusum_rho_alpha, params.z_mid / h, params.cusum_cap * h,
                         True)
    for array, name in zip(out[5:], ("level", "shift", "seasonal"), strict=True):
        assert _same(array, want.evidence[name]), name
    assert (want.winner == 1).any() and (want.winner == 2).any() and (want.winner == 0).any()


@pytest.mark.parametrize("block", [1_024, 4, 3])
def test_score_series_through_the_pass_is_the_composition(block: int) -> None:
    x, t = _series(7, rows=11)
    params = replace(P, block_series=block)
    want, _ = _composed(x, t, params)
    got = score_series(x, t, params)
    assert _same(got.combined, want.combined) and _same(got.winner, want.winner)
    for name in ("expected", "scale", "z"):
        assert _same(getattr(got.baseline, name), getattr(want.baseline, name)), name
    for name in ("profile", "bias", "scale"):
        assert _same(getattr(got.anchor, name), getattr(want.anchor, name)), name


def test_profile_pass_on_odd_profiles() -> None:
    """Profiles with NaN, zeros of both signs and infinite scales."""
    rng = np.random.default_rng(5)
    x, t = _series(11, days=3)
    shape = x.shape
    season = seasonal_baseline(x, t, P)
    fields = {}
    for name in ("expected", "scale", "z", "plain_z", "profile"):
        a = getattr(season, name).copy()
        for value, share in ((np.nan, 0.05), (np.inf, 0.01), (-np.inf, 0.01), (0.0, 0.02), (-0.0, 0.02)):
            if name == "scale" or np.isfinite(value):  # as_matrix refuses an infinite z or residual
                a[rng.random(shape) < share] = value
        fields[name] = np.abs(a) if name == "scale" else a
    odd = Baseline(fields["expected"], fields["scale"], fields["z"], fields["plain_z"], fields["profile"])
    step = typical_interval_ms(t)
    recent = combined._widened(x, t, robust_baseline(x, P), np.isfinite(odd.z), P, step, None)
    sides = cusum_sides_of_three(recent.z, odd.z, odd.plain_z, P)
    flat, drift = flatline_evidence(x, P), drift_evidence(x - odd.profile, odd.scale, P)
    _, baseline, best, winner = combined._combine_numpy(odd, recent, sides, flat, drift)
    got = combined._profile_pass(x, P, odd, step, None)
    assert _same(got.combined, calibrate(best, P)) and _same(got.winner, winner)
    for name in ("expected", "scale", "z"):
        assert _same(getattr(got.baseline, name), getattr(baseline, name)), name


def _cusum_computing_the_factor(z: np.ndarray, params: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """kernels.cusum_step as it was before it skipped the factor at z 0, in plain Python, one row."""
    k, h, rho_alpha, cap, unit = (params.cusum_k, params.cusum_h, params.cusum_rho_alpha,
                                  params.cusum_cap * params.cusum_h, params.z_mid / params.cusum_h)
    upper = lower = lag_product = previous = 0.0
    energy = 1.0
    ups, downs = [], []
    for value in z:
        zt = 0.0 if math.isnan(value) else min(max(float(value), -h / 2), h / 2)
        lag_product += rho_alpha * (zt * previous - lag_product)
        energy += rho_alpha * (zt * zt - energy)
        rho = min(max(lag_product / max(energy, 1e-12), 0.0), 0.95)
        step = zt * math.sqrt((1.0 - rho) / (1.0 + rho))
        upper = min(max(0.0, upper + (step - k)), cap)
        lower = min(max(0.0, lower - (step + k)), cap)
        previous = zt
        ups.append(upper * unit)
        downs.append(lower * unit)
    return np.array(ups), np.array(downs)


@pytest.mark.parametrize("seed", range(3))
def test_cusum_step_skipping_its_factor_at_zero_is_the_same(seed: int) -> None:
    rng = np.random.default_rng(40 + seed)
    z = rng.normal(0, 2, (3, 2000))
    z[rng.random(z.shape) < 0.2] = 0.0
    z[rng.random(z.shape) < 0.1] = -0.0
    z[rng.random(z.shape) < 0.1] = np.nan
    z[rng.random(z.shape) < 0.01] = 1e300
    z[:, 500:700] = 0.0
    for params in (P, CSV_PARAMS):
        upper, lower = cusum_sides(z, params)
        for row in range(z.shape[0]):
            want_upper, want_lower = _cusum_computing_the_factor(z[row], params)
            assert _same(upper[row], want_upper) and _same(lower[row], want_lower)
