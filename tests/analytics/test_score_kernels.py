"""The compiled passes of a block with a profile (kernels.combine, kernels.point_z: combined._combine, _point) give
the same bits as the whole-array numpy code they replaced (combined._combine_numpy, _point_numpy), on inputs with
NaN, infinities, zeros of both signs, ties and the largest floats; and score_series on real-looking series gives
the same point z and scores through both."""

from dataclasses import replace

import numpy as np
import pytest

from analytics.config import CSV_PARAMS, DetectorParams
from analytics.detectors import combined, kernels, score_series
from analytics.detectors.base import Baseline

MINUTE = 60_000
DAY = 1440 * MINUTE


def _nasty(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Normal values with NaN, +-inf, +-0.0, +-largest float, and many exact ties (values from a small set)."""
    x = rng.normal(0, 3, shape)
    tied = rng.random(shape) < 0.3
    x[tied] = rng.choice(np.array([0.0, -0.0, 1.0, -1.0, 2.5]), size=int(tied.sum()))
    for value, share in ((np.nan, 0.1), (np.inf, 0.02), (-np.inf, 0.02), (0.0, 0.05), (-0.0, 0.05),
                         (np.finfo(np.float64).max, 0.01), (-np.finfo(np.float64).max, 0.01)):
        x[rng.random(shape) < share] = value
    return x


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_combine_is_the_numpy_code(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (7, 400)
    season = Baseline(_nasty(rng, shape), np.abs(_nasty(rng, shape)), _nasty(rng, shape), _nasty(rng, shape),
                      _nasty(rng, shape))
    # Scales tied with the season's on a share of the rows (the `<` of the choice).
    recent_scale = np.where(rng.random(shape) < 0.2, season.scale, np.abs(_nasty(rng, shape)))
    recent = Baseline(_nasty(rng, shape), recent_scale, _nasty(rng, shape))
    sides = tuple(np.abs(np.where(rng.random(shape) < 0.3, 0.0, rng.normal(0, 2, shape))) for _ in range(6))
    flat = np.where(rng.random(shape) < 0.5, 0.0, np.abs(_nasty(rng, shape)))
    drift = np.where(rng.random(shape) < 0.5, 0.0, np.abs(rng.normal(0, 3, shape)))
    evidence, baseline, best, winner = combined._combine(season, recent, sides, flat, drift)
    evidence_np, baseline_np, best_np, winner_np = combined._combine_numpy(season, recent, sides, flat, drift)
    for name in combined.DETECTORS:
        assert _same(np.asarray(evidence[name], dtype=np.float64), np.asarray(evidence_np[name], dtype=np.float64))
    for field in ("expected", "scale", "z"):
        assert _same(getattr(baseline, field), getattr(baseline_np, field))
    assert _same(best, np.asarray(best_np, dtype=np.float64))
    assert _same(winner, winner_np)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("free_ratio", [0.0, 3.0])
def test_point_is_the_numpy_code(seed: int, free_ratio: float) -> None:
    rng = np.random.default_rng(100 + seed)
    shape = (5, 500)
    season = Baseline(_nasty(rng, shape), np.abs(_nasty(rng, shape)), _nasty(rng, shape), _nasty(rng, shape),
                      _nasty(rng, shape))
    recent = Baseline(_nasty(rng, shape), np.where(rng.random(shape) < 0.2, season.scale,
                                                   np.abs(_nasty(rng, shape))), _nasty(rng, shape))
    quick_z = _nasty(rng, shape)
    quick_scale = np.where(rng.random(shape) < 0.2, season.scale, np.abs(_nasty(rng, shape)))
    params = replace(CSV_PARAMS, point_free_ratio=free_ratio)
    ratio = np.where(rng.random(shape) < 0.1, np.nan, rng.normal(1, 1, shape))
    usual = np.where(rng.random(shape) < 0.1, np.nan, rng.normal(1, 1, shape))
    point = combined._point(season, recent, quick_z, quick_scale, ratio, usual, params)
    assert _same(point, combined._point_numpy(season, recent, quick_z, quick_scale, ratio, usual, params))


@pytest.mark.parametrize("seed", range(4))
def test_one_list_of_slides_gives_the_slid_profiles_bits(seed: int) -> None:
    """The profile's slides found once (kernels.profile_slides: the readings that slide and their moves) give the
    drift's residual (kernels.slid_residual) and the point z (kernels.point_z) the bits of the whole slid z and
    plain z arrays they replaced: (x - profile) + nan_to_num((slid z - z) * scale), and _point_numpy on the slid
    profile. Irregular times, NaN and infinite z, zeros of both signs, NaN profile."""
    rng = np.random.default_rng(300 + seed)
    shape = (3, 600)
    times = np.cumsum(rng.integers(60_000, 600_000, shape), axis=1).astype(np.float64)
    profile = np.where(np.arange(shape[1]) % 100 < 50, 60.0, 35.0) + rng.normal(0, 0.3, shape)
    profile[rng.random(shape) < 0.05] = np.nan
    scale = rng.uniform(0.5, 2.0, shape)
    with np.errstate(over="ignore"):
        z = _nasty(rng, shape) * 3  # the largest floats become infinities
    season = Baseline(_nasty(rng, shape), scale, z, _nasty(rng, shape), profile)
    x = _nasty(rng, shape)
    at, by = kernels.profile_slides(times, profile, scale, z, 1_800_000.0, 4.0)
    assert at.size > 20
    slid_z, slid_plain = season.z.copy(), season.plain_z.copy()
    slid_z.reshape(-1)[at] += by
    slid_plain.reshape(-1)[at] += by
    residual = np.empty(shape)
    kernels.slid_residual(x, profile, scale, z, at, by, residual)
    with np.errstate(invalid="ignore", over="ignore"):
        want = (x - profile) + np.nan_to_num((slid_z - z) * scale, nan=0.0)
    assert _same(residual, want)
    recent = Baseline(_nasty(rng, shape), np.abs(_nasty(rng, shape)), _nasty(rng, shape))
    quick_z, quick_scale = _nasty(rng, shape), np.abs(_nasty(rng, shape))
    ratio = usual = np.zeros(shape)
    slid = Baseline(season.expected, scale, slid_z, slid_plain, profile)
    assert _same(combined._point(season, recent, quick_z, quick_scale, ratio, usual, CSV_PARAMS, (at, by)),
                 combined._point_numpy(slid, recent, quick_z, quick_scale, ratio, usual, CSV_PARAMS))


def _series(seed: int, n: int = 12 * 1440) -> tuple[np.ndarray, np.ndarray]:
    """Daily cycles with noise, a spike, a dip, a level shift, a stuck stretch, gaps and a random walk."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * MINUTE
    x = 10 * np.sin(2 * np.pi * np.arange(n) / 1440)[None] + rng.normal(0, 1, (4, n))
    x[0, 9000] += 12
    x[1, 10000] -= 9
    x[2, 11000:] += 6
    x[3, 9500:9700] = x[3, 9499]
    x[:, rng.random(n) < 0.01] = np.nan
    x[3] = np.round(np.cumsum(rng.normal(0, 1, n)), 1)
    return x, t


@pytest.mark.parametrize("params", [CSV_PARAMS, replace(CSV_PARAMS, point_free_ratio=0.0),
                                    replace(CSV_PARAMS, profile_smooth_samples=0),
                                    replace(CSV_PARAMS, block_series=3)])  # blocks writing into score_series' rows
def test_score_series_through_numpy_and_compiled(params: DetectorParams, monkeypatch: pytest.MonkeyPatch) -> None:
    x, t = _series(3)
    compiled = score_series(x, t, params, with_evidence=True)
    monkeypatch.setattr(combined, "_combine", combined._combine_numpy)
    monkeypatch.setattr(combined, "_point", combined._point_numpy)
    plain = score_series(x, t, params, with_evidence=True)
    assert _same(compiled.combined, plain.combined)
    assert _same(compiled.winner, plain.winner)
    assert _same(compiled.point, plain.point)
    for name in combined.DETECTORS:
        assert _same(np.asarray(compiled.evidence[name], dtype=np.float64),
                     np.asarray(plain.evidence[name], dtype=np.float64))
    for field in ("expected", "scale", "z"):
        assert _same(getattr(compiled.baseline, field), getattr(plain.baseline, field))


@pytest.mark.parametrize("seed", range(4))
def test_drift_evidence_is_the_numpy_code(seed: int) -> None:
    """drift_evidence's compiled pass (kernels.drift_pass: two levels, the gap, its z, the evidence) against its numpy
    steps: a slow drift, a step, NaN gaps, zeros and infinities in the scale, a constant stretch."""
    from analytics.detectors import drift

    rng = np.random.default_rng(200 + seed)
    n = 3000
    r = rng.normal(0, 1, (4, n))
    r[0] += np.linspace(0, 8, n)
    r[1, 1500:] += 5
    r[2, rng.random(n) < 0.1] = np.nan
    r[3, 1000:1400] = 2.0
    scale = np.abs(rng.normal(1, 0.3, (4, n)))
    scale[:, rng.random(n) < 0.01] = 0.0
    scale[:, rng.random(n) < 0.01] = np.nan
    scale[:, rng.random(n) < 0.01] = np.inf
    for params in (CSV_PARAMS, replace(CSV_PARAMS, drift_hold_samples=1)):
        assert _same(drift.drift_evidence(r, scale, params), drift._drift_evidence_numpy(r, scale, params))


@pytest.mark.parametrize("seed", range(4))
def test_running_minimum_is_scipys_minimum_filter(seed: int) -> None:
    """The drift's hold (kernels.running_minimum) gives the bits of scipy.ndimage.minimum_filter1d over the last
    `width` samples (mode nearest), which it replaced: NaN, infinities, zeros of both signs and ties, windows of 1
    to longer than the row, rows of one sample."""
    from scipy.ndimage import minimum_filter1d

    from analytics.detectors import kernels

    rng = np.random.default_rng(400 + seed)
    n = (1, 9, 500, 3000)[seed]
    x = _nasty(rng, (5, n))
    for width in (1, 2, 3, 5, 30, 120, n, n + 3):
        got = np.empty_like(x)
        kernels.running_minimum(x, width, got)
        want = minimum_filter1d(x, size=width, axis=1, origin=(width - 1) // 2, mode="nearest")
        assert _same(got, want), width


@pytest.mark.parametrize("seed", range(4))
def test_row_passes_of_score_rows_are_the_numpy_code(seed: int) -> None:
    """csvscore's one-pass row scores against the numpy they replaced."""
    from analytics import csvscore
    from analytics.detectors.surprise import row_score

    rng = np.random.default_rng(300 + seed)
    n = 5000
    surprise = _nasty(rng, (1, n))[0]
    missing, learning = rng.random(n) < 0.1, np.arange(n) < 700
    score = np.empty(n)
    csvscore._row_scores(surprise, missing, learning, float(CSV_PARAMS.surprise_floor),
                         float(CSV_PARAMS.surprise_half), score)
    assert _same(score, np.where(missing | learning, 0.0, row_score(surprise, CSV_PARAMS)))


@pytest.mark.parametrize("seed", range(4))
def test_holt_both_is_two_holts(seed: int) -> None:
    """level._holt_both (kernels.holt_two: two recursions side by side, the second with gaps and a restart) gives
    the bits of two _holt calls: NaN gaps, a step, a constant stretch, infinities, the same x twice."""
    from analytics.detectors.level import _holt, _holt_both

    rng = np.random.default_rng(400 + seed)
    shape = (3, 3000)
    a = _nasty(rng, shape) if seed % 2 else rng.normal(0, 2, shape)
    b = rng.normal(5, 1, shape)
    b[:, 1000:] += 4
    b[:, 2000:2300] = 1.5
    b[rng.random(shape) < 0.1] = np.nan
    gaps = np.where(rng.random(shape) < 0.02, 9.0, 1.0)
    for first, second in ((a, b), (a, a)):
        for restart in (0.0, 4.0):
            both = _holt_both(first, 0.05, 0.1, True, second, 0.3, 0.05, seed > 1, CSV_PARAMS, gaps, restart)
            alone = (*_holt(first, 0.05, 0.1, True, CSV_PARAMS),
                     *_holt(second, 0.3, 0.05, seed > 1, CSV_PARAMS, gaps, restart))
            assert all(_same(u, v) for u, v in zip(both, alone, strict=True))


@pytest.mark.parametrize("seed", range(3))
def test_level_pair_is_the_levels_one_by_one(seed: int) -> None:
    """combined._level_pair (the recent and the quick level, then their errors' scales, in pairs) gives the bits
    of robust_baseline, _widened and _quick_level one by one, with and without gaps in the readings."""
    from analytics.detectors.level import robust_baseline

    rng = np.random.default_rng(500 + seed)
    n = 4 * 1440
    times = np.arange(n, dtype=np.int64) * MINUTE
    if seed:
        times[n // 2:] += 90 * MINUTE * seed  # a gap of hours: the quick level restarts
    x = (10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 1, n))[None]
    x[0, rng.random(n) < 0.05] = np.nan
    keep = np.zeros(x.shape, dtype=bool)
    keep[:, n // 2:] = True
    step = combined.typical_interval_ms(times)
    params = CSV_PARAMS
    recent, errors_scale, quick = combined._level_pair(x, times, params, step)
    paired = combined._widened(x, times, recent, keep, params, step, errors_scale)
    alone = combined._widened(x, times, robust_baseline(x, params), keep, params, step)
    for field in ("expected", "scale", "z"):
        assert _same(getattr(paired, field), getattr(alone, field))
    for u, v in zip(combined._quick_level(x, times, keep, params, paired, step, quick),
                    combined._quick_level(x, times, keep, params, alone, step), strict=True):
        assert _same(u, v)


@pytest.mark.parametrize("seed", range(3))
def test_cusum_of_three_is_three_cusums(seed: int) -> None:
    """shift.cusum_sides_of_three (kernels.cusum_three: three recursions side by side) gives the bits of three
    cusum_sides calls, on z with NaN, zeros of both signs and the largest floats (as_matrix refuses infinities),
    and on shifts."""
    from analytics.detectors.shift import cusum_sides, cusum_sides_of_three

    rng = np.random.default_rng(600 + seed)
    shape = (3, 2000)
    shifted = rng.normal(0, 1, shape)
    shifted[:, 700:] += 3.0
    nasty = _nasty(rng, shape)
    nasty[np.isinf(nasty)] = np.nan
    zs = (nasty, shifted, rng.standard_t(3, shape))
    three = cusum_sides_of_three(*zs, CSV_PARAMS)
    one_by_one = [side for z in zs for side in cusum_sides(z, CSV_PARAMS)]
    assert all(_same(u, v) for u, v in zip(three, one_by_one, strict=True))


@pytest.mark.parametrize("params", [CSV_PARAMS, replace(CSV_PARAMS, block_series=3)])
def test_lean_score_series_keeps_the_same_bits_of_what_the_row_score_reads(params: DetectorParams) -> None:
    """score_series(lean=True), `city score`'s: the combined score, its winner, the point z, the flatline and drift
    evidence and the anchor the same bits as without it; no baseline and no other evidence where it could skip
    them (one block of series)."""
    x, t = _series(3)
    full = score_series(x, t, params, with_evidence=True)
    lean = score_series(x, t, params, with_evidence=True, lean=True)
    for got, want in ((lean.combined, full.combined), (lean.winner, full.winner), (lean.point, full.point),
                      (lean.evidence["flatline"], full.evidence["flatline"]),
                      (lean.evidence["drift"], full.evidence["drift"]),
                      *((getattr(lean.anchor, f), getattr(full.anchor, f)) for f in ("profile", "bias", "scale"))):
        assert _same(got, want)
    if x.shape[0] <= params.block_series:
        assert lean.baseline is None and set(lean.evidence) == {"flatline", "drift"}
