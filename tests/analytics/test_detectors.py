"""The vectorised detectors against the slow references, edge cases by name,
causality, and what a user would notice: a fault is scored high, normal data low."""

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from analytics import detectors as d
from analytics.config import CSV_PARAMS, DAY_MS, DEFAULT_PARAMS, DOMAIN_LIMITS
from analytics.detectors import kernels
from analytics.rules import Hysteresis, incidents
from tests.analytics import reference as ref

P = DEFAULT_PARAMS
MINUTE = 60_000


def noisy_series(rng: np.random.Generator, n_series: int, n_times: int, nan_share: float = 0.05) -> np.ndarray:
    """Daily curves with noise, some gaps, a spike, a stuck stretch and a level shift."""
    t = np.arange(n_times)
    x = 50 + 10 * np.sin(2 * np.pi * t / 1440)[None] + rng.normal(0, 1, (n_series, n_times))
    x = np.round(x, 1)  # sensors have a resolution: repeats happen
    x[rng.random(x.shape) < nan_share] = np.nan
    if n_times > 200:
        x[0, 150] += 30
        x[1 % n_series, 120:170] = 55.0  # stuck, above the lowest value so far
        x[2 % n_series, 160:] += 8
    return x


def assert_same(fast: np.ndarray, slow: list[float]) -> None:
    np.testing.assert_allclose(fast, np.array(slow, dtype=float), rtol=1e-9, atol=1e-9, equal_nan=True)


# ---------------------------------------------------------------- against the references


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_robust_baseline_matches_reference(seed):
    x = noisy_series(np.random.default_rng(seed), 4, 300)
    fast = d.robust_baseline(x)
    for i in range(x.shape[0]):
        expected, scale, z = ref.robust_baseline(list(x[i]), P)
        assert_same(fast.expected[i], expected)
        assert_same(fast.scale[i], scale)
        assert_same(fast.z[i], z)
    flat = d.robust_baseline(x, alpha=0.05, trend=False)
    for i in range(x.shape[0]):
        assert_same(flat.z[i], ref.robust_baseline(list(x[i]), P, alpha=0.05, trend_on=False)[2])


@pytest.mark.parametrize("seed", [0, 1])
def test_cusum_matches_reference(seed):
    z = d.robust_baseline(noisy_series(np.random.default_rng(seed), 3, 300)).z
    fast = d.cusum_evidence(z)
    for i in range(z.shape[0]):
        assert_same(fast[i], ref.cusum_evidence(list(z[i]), P))
    upper, lower = d.cusum_sides(z)
    for i in range(z.shape[0]):
        ref_upper, ref_lower = ref.cusum_sides(list(z[i]), P)
        assert_same(upper[i], ref_upper)
        assert_same(lower[i], ref_lower)


def test_flatline_skips_rows_that_never_repeat_without_changing_any_score():
    rng = np.random.default_rng(13)
    x = rng.normal(50, 1, (6, 400))
    x[1, 200:260] = x[1, 199]  # stuck
    x[2] = np.round(x[2])  # quantised: repeats often, no run long enough to be surprising
    x[3, 100:300:7] = np.nan  # gaps inside a stuck run: they neither extend nor break it
    x[3, 150:300] = np.where(np.isnan(x[3, 150:300]), np.nan, 51.5)
    x[4, 300:303] = x[4, 299]  # a run shorter than flatline_min_run
    fast = d.flatline_nats(x)
    np.testing.assert_array_equal(fast, d._flatline_rows(x, DEFAULT_PARAMS))
    for i in range(x.shape[0]):
        assert_same(fast[i], ref.flatline_nats(list(x[i]), P))
    assert fast[1].max() > 0 and fast[3].max() > 0 and not fast[[0, 4, 5]].any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flatline_tail_nats_matches_reference_and_without_long_runs_is_the_geometric_run(seed):
    """The row score's stuck test (kernels.flatline_tail_nats, CSV_PARAMS) against the plain reference, on a
    coarse sensor's readings (long runs of its own), a stuck stretch, gaps and runs at the lowest value; with a
    prior so heavy that the runs' own continuation never counts, or with the prior 0 (off), it is the geometric run
    (flatline_nats, 0 at a reading at least the highest before it) that `city score` used before."""
    rng = np.random.default_rng(seed)
    n = 3000
    x = np.round(40 + np.cumsum(rng.normal(0, 0.03, n)) + rng.normal(0, 0.2, n))  # holds a reading for a while
    x[2000:2300] = np.median(x[:2000])  # stuck, neither at the lowest nor at the highest value
    x[500:540] = x[:500].min()  # idle at the lowest value so far
    x[rng.random(n) < 0.05] = np.nan
    got = np.empty(n)
    kernels.flatline_tail_nats(x, float(CSV_PARAMS.warmup), int(CSV_PARAMS.flatline_min_run),
                                 float(CSV_PARAMS.flatline_long_prior), got)
    assert_same(got, ref.flatline_tail_nats(list(x), CSV_PARAMS))
    assert got[2100:2300].max() > 0
    geometric = np.empty(n)
    kernels.flatline_tail_nats(x, float(CSV_PARAMS.warmup), int(CSV_PARAMS.flatline_min_run), 1e12, geometric)
    highest_before = np.concatenate(([-np.inf], np.fmax.accumulate(np.nan_to_num(x, nan=-np.inf))[:-1]))
    old = np.where(x >= highest_before, 0.0, d.flatline_nats(x[None], CSV_PARAMS)[0])
    np.testing.assert_allclose(geometric, old, rtol=1e-9)
    off = np.empty(n)
    kernels.flatline_tail_nats(x, float(CSV_PARAMS.warmup), int(CSV_PARAMS.flatline_min_run), 0.0, off)
    np.testing.assert_allclose(off, old, rtol=1e-12)
    assert (got <= geometric * (1 + 1e-12)).all()  # a series' long runs only ever explain a run

def test_the_end_of_a_fault_is_no_new_shift():
    """A pressure drop for 4 hours is a shift; the return onto the daily profile afterwards is not another one."""
    rng = np.random.default_rng(12)
    n = 4 * 1440
    times = (4 * 1440 + np.arange(n)) * MINUTE  # Monday 1970-01-05 on: four working days
    x = 3 + 0.5 * np.sin(2 * np.pi * times / DAY_MS)[None] + rng.normal(0, 0.02, (20, n))
    start, end = 3 * 1440 + 300, 3 * 1440 + 540
    x[:, start:end] -= 0.12  # a leak: 6 sigmas down for 4 hours, then mended
    scores = d.score_series(x, times, with_evidence=True)
    open_score = DEFAULT_PARAMS.open_score
    assert (scores.combined[:, start:start + 30].max(axis=1) > open_score).all()  # found within 30 min
    # The mend is a jump against the recent level (scores ~0.5-0.8), but no shift, and opens (almost) no alert.
    assert d.calibrate(scores.evidence["shift"][:, end:end + 120]).max() < open_score
    opened_after_mend = [row for row, first, _ in incidents(Hysteresis().step(scores.combined)) if first >= end]
    assert len(opened_after_mend) <= 2


@pytest.mark.parametrize("seed", [0, 1])
def test_flatline_matches_reference(seed):
    x = noisy_series(np.random.default_rng(seed), 4, 300, nan_share=0.1)
    fast = d.flatline_nats(x)
    for i in range(x.shape[0]):
        assert_same(fast[i], ref.flatline_nats(list(x[i]), P))
    assert fast[1, 165] > P.flatline_nats  # the stuck stretch is found


def test_seasonal_expected_matches_reference_with_irregular_times():
    rng = np.random.default_rng(3)
    n = 260
    # Every ~20 minutes with jitter and a few long gaps: 3.6 days of samples.
    steps = rng.integers(15 * MINUTE, 25 * MINUTE, n)
    steps[[50, 120]] = 6 * 3600 * 1000
    times = np.cumsum(steps)
    x = noisy_series(rng, 2, n)
    # One time row shared by both series, and per-series rows (the engine's case);
    # days of any type, and working days apart from weekends (the series starts on a Thursday).
    x[0, rng.random(n) < 0.05] = np.nan
    # ... and the CSV scorer's profile read through a running median of seven (CSV_PARAMS).
    for params in (replace(P, day_types=False), P, replace(P, utc_offset_h=7), CSV_PARAMS,
                   replace(CSV_PARAMS, day_types=False)):
        shared = d.seasonal_expected(x, times, DAY_MS, params)
        own = d.seasonal_expected(x, np.stack([times, times + 7 * MINUTE]), DAY_MS, params)
        for i in range(2):
            assert_same(shared[i], ref.seasonal_expected(list(x[i]), list(times), DAY_MS, params))
            assert_same(own[i], ref.seasonal_expected(list(x[i]), list(times + 7 * MINUTE * i), DAY_MS, params))
        if not params.day_types:
            assert np.isfinite(shared[0, -50:]).sum() > 25  # late samples do have a profile


def test_the_day_type_tie_break_matches_reference():
    """Ten days of ~hourly samples from a Thursday, an odd first Sunday: the weekend days have two days of their
    own type in their week, and the all-days profile breaks the tie between them (seasonal.day_type_profile)."""
    rng = np.random.default_rng(8)
    n = 240
    times = np.cumsum(rng.integers(55 * MINUTE, 65 * MINUTE, n))
    hour = times % DAY_MS / 3_600_000
    x = 50 + 10 * np.sin(2 * np.pi * hour / 24)[None] + rng.normal(0, 1, (2, n))
    sunday = (times // DAY_MS + 3) % 7 == 6
    x[:, sunday & (times < 7 * DAY_MS)] += 8  # the first Sunday is odd
    x[1, rng.random(n) < 0.05] = np.nan
    for params in (P, replace(P, utc_offset_h=7), CSV_PARAMS):
        shared = d.seasonal_expected(x, times, DAY_MS, params)
        own = d.seasonal_expected(x, np.stack([times, times + 7 * MINUTE]), DAY_MS, params)
        for i in range(2):
            assert_same(shared[i], ref.seasonal_expected(list(x[i]), list(times), DAY_MS, params))
            assert_same(own[i], ref.seasonal_expected(list(x[i]), list(times + 7 * MINUTE * i), DAY_MS, params))
        untied = d.seasonal_expected(x, times, DAY_MS, replace(params, day_type_tiebreak=False))
        assert (np.abs(shared - untied) > 1).sum() > 20  # the tie-break was taken (not only the mean of two)


def test_peer_residual_matches_reference():
    rng = np.random.default_rng(4)
    x = noisy_series(rng, 7, 40, nan_share=0.2)
    groups = np.array(["a", "a", "a", "a", "b", "b", "c"])
    fast = d.peer_residual(x, groups)
    slow = ref.peer_residual([list(row) for row in x], list(groups), P)
    for i in range(7):
        assert_same(fast[i], slow[i])
    assert np.isnan(fast[4:]).all()  # groups b and c have too few peers


def test_median_of_few_matches_numpy():
    rng = np.random.default_rng(5)
    for count in (1, 2, 3, 5):
        arrays = [np.where(rng.random((4, 30)) < 0.3, np.nan, rng.normal(size=(4, 30))) for _ in range(count)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on all-NaN slices
            want = np.nanmedian(np.stack(arrays), axis=0)
        np.testing.assert_allclose(d.median_of_few(arrays), want, equal_nan=True)


# ---------------------------------------------------------------- causality


def test_scores_are_causal():
    """Changing the future never changes a score of the past."""
    rng = np.random.default_rng(6)
    x = noisy_series(rng, 3, 3 * 1440 + 100)
    times = np.arange(x.shape[1]) * MINUTE
    cut = 3 * 1440
    before = d.score_series(x[:, :cut], times[:cut], with_evidence=True)
    changed = x.copy()
    changed[:, cut:] = rng.normal(500, 100, (3, x.shape[1] - cut))
    after = d.score_series(changed, times, with_evidence=True)
    np.testing.assert_array_equal(after.combined[:, :cut], before.combined)
    for name in d.DETECTORS:
        np.testing.assert_array_equal(after.evidence[name][:, :cut], before.evidence[name])


# ---------------------------------------------------------------- edge cases by name


@pytest.mark.parametrize("shape", [(0, 0), (3, 0), (0, 5)], ids=["empty", "no-samples", "no-series"])
def test_empty(shape):
    scores = d.score_series(np.zeros(shape), np.arange(shape[1]) * MINUTE)
    assert scores.combined.shape == shape
    assert d.flatline_nats(np.zeros(shape)).shape == shape
    assert d.robust_baseline(np.zeros(shape)).z.shape == shape


def test_one_sample():
    scores = d.score_series(np.array([[42.0]]), np.array([0]))
    assert scores.combined.tolist() == [[0.0]]
    assert math.isnan(d.robust_baseline([42.0]).z[0, 0])


def test_all_nan():
    x = np.full((2, 500), np.nan)
    scores = d.score_series(x, np.arange(500) * MINUTE)
    assert (scores.combined == 0).all()


def test_constant_series_scores_zero_then_a_change_scores_high():
    x = np.full((1, 400), 230.0)
    scores = d.score_series(x, np.arange(400) * MINUTE)
    assert (scores.combined == 0).all()  # a constant sensor is not stuck: it never varied
    x[0, 300] = 240.0
    assert d.score_series(x).combined[0, 300] > 0.99


def test_one_series_as_1d_array():
    x = noisy_series(np.random.default_rng(7), 1, 300)[0]
    assert d.score_series(x).combined.shape == (1, 300)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("values, message", [
    (np.zeros((2, 2, 2)), "dimensions"),
    ([[1.0, math.inf]], "infinite"),
    ([["a", "b"]], "numbers"),
])
def test_bad_values_are_refused(values, message):
    with pytest.raises(d.DetectorInputError, match=message):
        d.score_series(values)


@pytest.mark.parametrize("times, message", [
    (np.array([0, 2, 1]), "decrease"),
    (np.array([0, 1]), "shape"),
    (np.array(["a", "b", "c"]), "milliseconds"),
    (np.array([0.0, math.nan, 2.0]), "finite"),
])
def test_bad_times_are_refused(times, message):
    with pytest.raises(d.DetectorInputError, match=message):
        d.score_series(np.zeros((1, 3)), times)


@pytest.mark.parametrize(("field", "value"), [("level_alpha", 0.0), ("scale_alpha", 1.5), ("level_alpha", math.nan)])
@pytest.mark.parametrize("days", [1, 4])  # no profile (the level pass), a daily profile (the profile pass)
@pytest.mark.parametrize("with_evidence", [False, True])  # with the row score's point z (its own path) or not
def test_a_smoothing_step_outside_0_1_is_refused_on_every_path(field, value, days, with_evidence):
    times = np.arange(days * 288, dtype=np.int64) * 300_000
    x = np.random.default_rng(5).normal(100.0, 1.0, (2, times.size))
    with pytest.raises(d.DetectorInputError, match=r"alpha must be in \(0, 1\]"):
        d.score_series(x, times, replace(DEFAULT_PARAMS, **{field: value}), with_evidence=with_evidence)


def test_a_drift_scale_step_outside_0_1_is_refused():
    with pytest.raises(d.DetectorInputError, match=r"alpha must be in \(0, 1\]"):
        d.drift_evidence(np.zeros((1, 5)), np.ones((1, 5)), replace(DEFAULT_PARAMS, drift_scale_alpha=0.0))


def test_bad_alpha_and_groups_are_refused():
    with pytest.raises(d.DetectorInputError):
        d.robust_baseline(np.zeros((1, 3)), alpha=0)
    with pytest.raises(d.DetectorInputError, match="one label per series"):
        d.peer_residual(np.zeros((3, 4)), np.array(["a", "b"]))


# ---------------------------------------------------------------- behaviour


def test_faults_score_high_and_normal_data_low():
    rng = np.random.default_rng(8)
    n = 4 * 1440
    times = (4 * 1440 + np.arange(n)) * MINUTE  # Monday 1970-01-05 on: four working days
    x = 100 + 20 * np.sin(2 * np.pi * times / DAY_MS)[None] + rng.normal(0, 1, (40, n))
    start = 3 * 1440 + 200
    x[0, start] += 12  # spike
    x[1, start:start + 120] += 4  # level shift of 4 sigmas
    x[2, start:start + 120] = x[2, start - 1]  # stuck
    x[3, start:start + 120] += np.linspace(0, 15, 120)  # drift
    scores = d.score_series(x, times)
    window = slice(start, start + 120)
    for row, fault in enumerate(["spike", "shift", "stuck", "drift"]):
        assert scores.combined[row, window].max() > 0.9, fault
    normal = scores.combined[4:, 100:]
    assert (normal > DEFAULT_PARAMS.open_score).mean() < 1e-4  # under one false sample per 10,000


def test_scores_are_in_unit_interval_and_calibrated_the_same_on_any_scale():
    rng = np.random.default_rng(9)
    x = noisy_series(rng, 3, 600)
    times = np.arange(600) * MINUTE
    small = d.score_series(x, times).combined
    large = d.score_series(x * 1000 + 5e6, times).combined
    assert small.min() >= 0 and small.max() <= 1
    np.testing.assert_allclose(small, large, atol=0.02)


def test_calibrate_is_monotonic_and_bounded():
    z = np.linspace(-50, 50, 1001)
    s = d.calibrate(z)
    assert s.min() == 0.0 and s.max() <= 1.0
    assert s[500] == 0.0 and abs(d.calibrate(np.array([P.z_mid]))[0] - 0.5) < 0.01
    assert (np.diff(s[500:]) >= 0).all()
    assert d.calibrate(np.array([np.nan]))[0] == 0.0


def test_limits_from_the_standards():
    voltage = DOMAIN_LIMITS["voltage_v"][0]
    assert "EN 50160" in voltage.source
    assert d.limit_score(np.array([230.0, 206.0, 254.0, np.nan]), voltage).tolist() == [[0, 1, 1, 0]]
    frequency = DOMAIN_LIMITS["frequency_hz"][0]
    assert d.limit_score(np.array([50.0, 49.4, 50.6]), frequency).tolist() == [[0, 1, 1]]
    assert d.limit_score(np.array([0.0, 1.0]), DOMAIN_LIMITS["beds_free"][0]).tolist() == [[1, 0]]
    for limits in DOMAIN_LIMITS.values():
        for limit in limits:
            assert limit.source and limit.severity in ("info", "warning", "critical")


def test_silence():
    last = np.array([0.0, 200_000.0, np.nan])
    s = d.silence_score(last, 300_000, np.array([60_000, 60_000, 60_000]))
    assert s[0] > 0.6 and s[1] == 0.0 and s[2] == 0.0


def test_peer_drift_is_found():
    rng = np.random.default_rng(10)
    common = 30 + 5 * np.sin(np.arange(2000) / 200)
    x = common[None] * rng.uniform(0.8, 1.2, (6, 1))[:, :1] + rng.normal(0, 0.3, (6, 2000))
    x[0, 1500:] += np.linspace(0, 6, 500)  # meter 0 drifts away from its district
    z = d.peer_z(x, np.array(["d1"] * 6))
    evidence = d.cusum_evidence(z)
    assert d.calibrate(evidence[0, 1500:]).max() > 0.9
    assert d.calibrate(evidence[1:, 100:]).max() < 0.8


def test_minimum_night_flow_finds_a_new_leak():
    rng = np.random.default_rng(11)
    days = 6
    times = np.arange(days * 1440) * MINUTE - 7 * 3600 * 1000  # starts at local midnight (UTC+7)
    hour = (np.arange(days * 1440) % 1440) / 60
    demand = 5 + 20 * np.exp(-((hour - 8) ** 2) / 8) + 15 * np.exp(-((hour - 19) ** 2) / 6)
    x = np.stack([demand, demand]) + rng.normal(0, 0.2, (2, days * 1440))
    x[1, 4 * 1440:] += 2.5  # a leak from day 4 on: +50 % at night, small by day
    nights, minima, ready = d.night_minimum(x, times, 7)
    assert len(nights) == days
    score = d.night_flow_score(minima)
    assert score[1, 4:].min() == 1.0 and score[1, :4].max() < 0.5
    assert score[0].max() < 0.5
    local_hour_ready = ((ready + 7 * 3600 * 1000) % DAY_MS) / 3_600_000
    assert (local_hour_ready == P.night_end_h).all()


def test_scoring_in_blocks_gives_the_same_result():
    x = noisy_series(np.random.default_rng(12), 5, 3 * 1440)
    times = (4 * 1440 + np.arange(x.shape[1])) * MINUTE
    whole = d.score_series(x, times, with_evidence=True)
    blocks = d.score_series(x, times, replace(P, block_series=2), with_evidence=True)
    np.testing.assert_array_equal(blocks.combined, whole.combined)
    np.testing.assert_array_equal(blocks.winner, whole.winner)
    np.testing.assert_array_equal(blocks.baseline.z, whole.baseline.z)
    for name in d.DETECTORS:
        np.testing.assert_array_equal(blocks.evidence[name], whole.evidence[name])
    assert d.score_series(x, times).evidence == {}  # kept only on request


def working_days(rng: np.random.Generator, n_series: int, days: int, weather: float = 0.0) -> tuple:
    """Per-minute daily curves from Monday 1970-01-05 on: sine + noise (sd 1) + a slow wander of +-`weather`.

    The wander (a 3.3-day period, random phase per series) makes some days
    busier or warmer than others, as weather and events do.
    """
    n = days * 1440
    times = (4 * 1440 + np.arange(n)) * MINUTE
    wander = weather * np.sin(2 * np.pi * times[None] / (3.3 * DAY_MS) + rng.uniform(0, 2 * np.pi, (n_series, 1)))
    return times, 100 + 20 * np.sin(2 * np.pi * times / DAY_MS)[None] + wander + rng.normal(0, 1, (n_series, n))


def test_a_lasting_fault_is_one_incident_from_its_start_to_its_end():
    """An 8-hour drop: the running baselines learn it within two hours, but the incident holds until it ends."""
    times, x = working_days(np.random.default_rng(21), 20, 4)
    start, end = 3 * 1440 + 300, 3 * 1440 + 780
    x[:, start:end] -= 8
    scores = d.score_series(x, times)
    active = Hysteresis().step(scores.combined, values=x, anchor=scores.anchor)
    late = [(row, first, after) for row, first, after in incidents(active) if after > 3 * 1440]
    assert sorted(row for row, _, _ in late) == list(range(20))  # one incident per series, no second at the mend
    for _, first, after in late:
        assert start <= first <= start + 5
        assert end <= after <= end + 60


def test_the_hold_keeps_an_incident_open_while_the_readings_stay_off_the_anchor():
    """Scores fall (the baselines learnt the fault) but the readings are still where the fault put them."""
    n = 100
    score = np.zeros((2, n))
    score[:, 20:35] = 1.0  # the detectors see the fault for 15 samples, then get used to it
    values = np.zeros((2, n))
    values[:, 20:70] = -8.0  # the fault lasts 50 samples, then the series is mended
    anchor = d.Anchor(np.zeros((2, n)), np.zeros((2, n)), np.ones((2, n)))  # profile 0, bias 0, scale 1
    held = incidents(Hysteresis().step(score, values=values, anchor=anchor))
    plain = incidents(Hysteresis().step(score))
    clear = DEFAULT_PARAMS.clear_samples
    # A certain score opens at once; the 15th calm sample in a row closes.
    assert [(first, after) for _, first, after in plain] == [(20, 34 + clear)] * 2  # gone while the fault runs
    assert len(held) == 2
    for _, first, after in held:
        assert first == 20 and 69 + clear <= after <= 70 + clear + 5  # open until the series is mended


def test_a_slow_drift_is_found_while_it_drifts_and_busy_days_are_not_drift():
    rng = np.random.default_rng(22)
    times, x = working_days(rng, 40, 5, weather=2.0)
    start, end = 4 * 1440 + 60, 4 * 1440 + 780
    x[:10, start:end] += np.linspace(0, 20, end - start)  # a sensor drifting 20 sigmas over 12 hours
    scores = d.score_series(x, times, with_evidence=True)
    drift = d.calibrate(scores.evidence["drift"])
    found = [int(np.argmax(drift[row, start:end] >= DEFAULT_PARAMS.open_score)) for row in range(10)
             if (drift[row, start:end] >= DEFAULT_PARAMS.open_score).any()]
    assert len(found) >= 8 and np.median(found) < 360  # in the first half of the drift (it ends at 720)
    assert (drift[10:, 1440:] < DEFAULT_PARAMS.open_score).all()  # busier and quieter days are not a drift
    after = drift[:10, end + 30:end + 240]
    assert (after < DEFAULT_PARAMS.clear_score).mean() > 0.95  # the repair is no drift the other way


def test_the_cusum_forgets_a_long_shift_soon_after_it_ends():
    z = np.random.default_rng(23).normal(0, 1, (1, 1000))
    z[0, 100:250] += 4  # a shift of 4 sigmas for 150 samples
    evidence = d.cusum_evidence(z)
    assert d.calibrate(evidence[0, 240:250]).min() > 0.99
    p = DEFAULT_PARAMS
    settle = int(p.cusum_cap * p.cusum_h / p.cusum_k) + 1
    assert d.calibrate(evidence[0, 250 + settle:]).max() < p.clear_score  # not 150 samples of decay


def test_before_a_daily_profile_a_morning_after_a_quiet_night_is_no_anomaly_but_a_spike_is():
    """Day one of a traffic counter: zero-ish at night, a rush at 07:00; nothing to compare with yet."""
    rng = np.random.default_rng(24)
    minutes = np.arange(2 * 1440)
    times = (4 * 1440 + minutes) * MINUTE
    hour = (minutes % 1440) / 60
    traffic = 1 + 70 * np.clip(np.sin(np.pi * (hour - 5) / 17), 0, None) ** 2  # 05:00-22:00, busiest at 13:30
    x = traffic[None] + rng.normal(0, 1, (10, minutes.size)) * np.sqrt(traffic) / 2
    x[:5, 1440 + 12 * 60] += 60  # a spike at noon of day two
    scores = d.score_series(x, times).combined
    day_two = slice(1440, 2 * 1440)
    assert (scores[5:, day_two] < DEFAULT_PARAMS.open_score).all()
    assert (scores[:5, 1440 + 12 * 60] > 0.9).all()
    unfloored = d.score_series(x, times, replace(DEFAULT_PARAMS, day_scale_floor=0.0)).combined
    assert (unfloored[5:, day_two] >= DEFAULT_PARAMS.open_score).any()  # what the floor is for


def test_a_morning_the_profile_always_gets_wrong_is_judged_by_other_mornings():
    """Counts that jump at a slightly different minute every morning: the profile errs there daily, by design."""
    rng = np.random.default_rng(25)
    days, n_series = 5, 20  # Monday to Friday
    minutes = np.arange(days * 1440)
    times = (4 * 1440 + minutes) * MINUTE
    onset = np.repeat(rng.uniform(6 * 60, 7 * 60, (n_series, days)), 1440, axis=1)  # 06:00-07:00, random
    x = np.where((minutes % 1440)[None] >= onset, 40.0, 2.0) + rng.normal(0, 0.5, (n_series, minutes.size))
    plain = d.score_series(x, times, replace(DEFAULT_PARAMS, profile_scale_by_hour=False)).combined
    judged = d.score_series(x, times).combined
    last_days = slice(4 * 1440, None)  # Friday: the profile's errors of two mornings (Wednesday, Thursday) known
    # A third fewer alarming samples (the onset still surprises in the minutes no other morning had it).
    assert (judged[:, last_days] >= DEFAULT_PARAMS.open_score).sum() < \
        (plain[:, last_days] >= DEFAULT_PARAMS.open_score).sum() * 2 / 3
    x[:5, 4 * 1440 + 13 * 60] += 20  # a spike at 13:00 on Friday is still one
    assert (d.score_series(x, times).combined[:5, 4 * 1440 + 13 * 60] > 0.9).all()


@pytest.mark.parametrize("seed", range(4))
def test_flatline_rows_compiled_is_the_numpy_composition(seed):
    """_flatline_rows (the counts in one compiled pass, the log in numpy) gives the bits of the numpy version:
    NaN first and inside runs, runs at and above the floor, signed zeros, quantised and stuck rows."""
    from analytics.detectors.flatline import _flatline_rows_numpy

    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(0, 1.5, (8, 500)))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[1, :40] = np.nan
    x[2, 100:300] = x[2, 99]
    x[3] = np.where(rng.random(500) < 0.5, 0.0, -0.0)
    x[4, 0] = np.nan
    x[4, 50:200] = -5.0  # a run at the lowest value
    x[5] = np.nan
    for params in (DEFAULT_PARAMS, DEFAULT_PARAMS.__class__(warmup=0, flatline_min_run=1)):
        got, want = d._flatline_rows(x, params), _flatline_rows_numpy(x, params)
        np.testing.assert_array_equal(np.where(np.isnan(got), np.nan, got).view(np.int64),
                                      np.where(np.isnan(want), np.nan, want).view(np.int64))
        assert (want > 0).any()
    from analytics.detectors.flatline import _repeat_count, _repeat_count_numpy

    for rows in (x, np.nan_to_num(x)):
        np.testing.assert_array_equal(_repeat_count(rows), _repeat_count_numpy(rows))
    for width in (0, 1):
        empty = x[:, :width]
        np.testing.assert_array_equal(_repeat_count(empty), _repeat_count_numpy(empty))
        want = _flatline_rows_numpy(empty, DEFAULT_PARAMS)
        np.testing.assert_array_equal(d._flatline_rows(empty, DEFAULT_PARAMS), want)
