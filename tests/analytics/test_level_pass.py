"""The one compiled pass of a block without a profile (kernels.level_pass, combined._without_profile) gives the
same bits as the numpy composition it replaced: robust_baseline, combined._widened, the level, CUSUM and
flatline evidence, combined._strongest and calibrate. And calibrate in place gives the bits of its formula."""

from dataclasses import replace

import numpy as np
import pytest

from analytics.config import DEFAULT_PARAMS as P
from analytics.config import DetectorParams
from analytics.detectors import combined, score_series
from analytics.detectors.base import Baseline, calibrate
from analytics.detectors.flatline import flatline_evidence
from analytics.detectors.level import robust_baseline
from analytics.detectors.shift import cusum_evidence

MINUTE = 60_000


def _composed(x: np.ndarray, times: np.ndarray | None, params: DetectorParams) -> combined.Scores:
    """The previous code of _score_block's branch without a profile, step by step in numpy."""
    recent = robust_baseline(x, params)
    if times is not None and params.day_scale_floor > 0:
        recent = combined._widened(x, times, recent, None, params)
    evidence = {"level": np.abs(np.nan_to_num(recent.z)), "shift": cusum_evidence(recent.z, params),
                "seasonal": np.zeros(x.shape), "flatline": flatline_evidence(x, params), "drift": np.zeros(x.shape)}
    return combined._strongest(evidence, recent, params, skip=("seasonal", "drift"))


def _calibrate_formula(z: np.ndarray, params: DetectorParams) -> np.ndarray:
    """calibrate as it was written before it worked in place: one temporary per step."""
    z = np.abs(np.asarray(z, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        score = 1.0 / (1.0 + np.exp(-(z - params.z_mid) / params.z_width))
    at_zero = 1.0 / (1.0 + np.exp(params.z_mid / params.z_width))
    score = (score - at_zero) / (1.0 - at_zero)
    return np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0)


def _mixed(rows: int = 240, n: int = 700) -> np.ndarray:
    """Noise, quantised readings that repeat, flat and stuck rows, gaps, counts, spikes, a random walk."""
    rng = np.random.default_rng(11)
    x = np.round(rng.normal(10, 2, (rows, n)), 1)
    x[:20] = 3.0
    x[20:40, 300:420] = x[20:40, 299:300]
    x[40:60, ::7] = np.nan
    x[60:65] = np.nan
    x[65:70, :300] = np.nan
    x[70:90] = rng.integers(0, 3, (20, n))
    x[90:100, 400] = 1e9
    x[100:110] = np.cumsum(rng.normal(0, 1, (10, n)), axis=1)
    x[110:120, 200:] = 0.0
    x[120:] = rng.normal(0, 1e-7, (rows - 120, n)) + 5e6
    return x


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("times", [np.arange(700) * MINUTE, None, np.cumsum(np.arange(700) % 5 + 1) * 30_000])
@pytest.mark.parametrize("params", [P, replace(P, day_scale_floor=0.0), replace(P, warmup=3, huber_clip=1.5)])
def test_level_pass_is_the_numpy_composition(times: np.ndarray | None, params: DetectorParams) -> None:
    x = _mixed()
    want = _composed(x, times, params)
    got = combined._without_profile(x, times, params, True, None)
    for name in ("expected", "scale", "z"):
        assert _same(getattr(got.baseline, name), getattr(want.baseline, name)), name
    assert _same(got.winner, want.winner)
    assert _same(got.combined, want.combined)
    for name, evidence in want.evidence.items():
        assert _same(got.evidence[name], evidence), name
    assert (got.winner == 3).any() and (got.winner == 1).any() and (got.winner == 0).any()


def test_score_series_blocks_write_in_place_the_same_bits() -> None:
    x = _mixed()
    times = np.arange(700) * MINUTE
    whole = score_series(x, times)
    blocks = score_series(x, times, replace(P, block_series=17))
    want = _composed(x, times, P)
    for scores in (whole, blocks):
        assert _same(scores.combined, want.combined) and _same(scores.winner, want.winner)
        assert _same(scores.baseline.z, want.baseline.z) and _same(scores.baseline.scale, want.baseline.scale)
        assert scores.anchor is None


def test_calibrate_in_place_is_the_formula() -> None:
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(0, 5, 100_003), [np.nan, np.inf, -np.inf, 0.0, -0.0, 4.5, 1e308, 800.0]])
    want = _calibrate_formula(z, P)
    assert _same(calibrate(z, P), want)
    assert _same(calibrate(z[1:], P), want[1:])  # another alignment
    buffer = z.copy()
    assert calibrate(buffer, P, out=buffer) is buffer and _same(buffer, want)
    assert calibrate(3.0, P) == _calibrate_formula(3.0, P) and np.ndim(calibrate(3.0, P)) == 0
    small = z[~(np.abs(z) > 1e30)].astype(np.float32)
    assert _same(calibrate(small, P), _calibrate_formula(small, P))


def test_level_pass_baseline_is_robust_baseline_without_widening() -> None:
    x = _mixed()
    got = combined._without_profile(x, None, P, False, None)
    want = robust_baseline(x, P)
    assert isinstance(got.baseline, Baseline)
    assert _same(got.baseline.expected, want.expected) and _same(got.baseline.z, want.z)


@pytest.mark.parametrize("warmup", [0, 1, 30])
def test_warm_z_is_the_numpy_z(warmup: int) -> None:
    """robust_baseline's z in one compiled pass (level.warm_z): the bits of the cumsum, where and division."""
    from analytics.detectors.level import warm_z

    rng = np.random.default_rng(warmup)
    x = rng.normal(0, 1, (4, 300)) * 10.0 ** rng.integers(-3, 9, (4, 300))
    x[rng.random(x.shape) < 0.2] = np.nan
    expected = rng.normal(0, 1, x.shape)
    expected[rng.random(x.shape) < 0.1] = np.nan
    scale = np.abs(rng.normal(0, 1, x.shape))
    scale[rng.random(x.shape) < 0.05] = 0.0  # numpy's inf and NaN
    seen_before = np.cumsum(~np.isnan(x), axis=1) - ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(seen_before >= warmup, (x - expected) / scale, np.nan)
    got = warm_z(x, expected, scale, warmup)
    same = np.where(np.isnan(got), np.nan, got).view(np.int64) == np.where(np.isnan(want), np.nan, want).view(np.int64)
    assert same.all()
