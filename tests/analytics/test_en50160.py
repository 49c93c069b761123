"""EN 50160 weekly verdicts: planted weeks just inside and just outside every limit, for both shipped
cities' grids (from their profiles), against the slow twin in naive_power.py, and bad input refused."""

from pathlib import Path

import numpy as np
import pytest

from analytics import en50160
from analytics.en50160 import FAIL, NO_DATA, PASS, SLOTS_PER_WEEK, Limits, slot_means, weekly_compliance
from telemetry_shared.city import load_profile
from tests.analytics import naive_power

CITIES = sorted((Path(__file__).resolve().parents[2] / "cities").glob("*.yaml"))
WEEK = SLOTS_PER_WEEK


def limits_of(path: Path, interconnected: bool | None = None) -> Limits:
    limits = Limits.from_grid(load_profile(path).grid)
    if interconnected is not None:
        limits = Limits(limits.nominal_v, limits.nominal_hz, interconnected)
    return limits


def flat(value: float, rows: int = 1) -> np.ndarray:
    return np.full((rows, WEEK), value)


def test_the_profiles_say_island_or_interconnected():
    for path in CITIES:
        grid = load_profile(path).grid
        assert isinstance(grid.interconnected, bool) and grid.interconnected_source


@pytest.mark.parametrize("path", CITIES, ids=lambda p: p.stem)
def test_voltage_95_percent_within_ten_percent_just_inside_and_just_outside(path):
    lim = limits_of(path)
    un = lim.nominal_v
    allowed_out = WEEK - int(np.ceil(0.95 * WEEK))  # 50 of 1,008 ten-minute means
    inside = flat(un, 2)
    inside[0, :allowed_out] = un * 0.88  # under -10 % but above -15 %: 50 means, allowed
    inside[1, :allowed_out] = un * 0.90  # exactly -10 % counts as inside: all 1,008 inside
    inside[1, allowed_out:] = un * 1.10  # and exactly +10 %
    outside = inside.copy()
    outside[0, allowed_out] = un * 0.88  # 51 under -10 %: 94.9 %
    outside[1, 0] = un * 1.10 + 1e-6  # just over +10 % (on the high side the always limit is the same)
    freq = flat(lim.nominal_hz, 2)
    ok = weekly_compliance(inside, freq, lim)
    bad = weekly_compliance(outside, freq, lim)
    assert ok.voltage[:, 0].tolist() == [PASS, PASS]
    assert bad.voltage[:, 0].tolist() == [FAIL, FAIL]
    assert ok.voltage_share_in_band[0, 0] == pytest.approx((WEEK - allowed_out) / WEEK)


@pytest.mark.parametrize("path", CITIES, ids=lambda p: p.stem)
def test_voltage_always_within_plus_ten_minus_fifteen(path):
    lim = limits_of(path)
    un = lim.nominal_v
    week = flat(un, 4)
    week[0, 0] = un * 0.85  # exactly -15 %: allowed
    week[1, 0] = un * 0.85 - 0.01  # just under: one 10-minute mean fails the week
    week[2, 0] = un * 1.10  # exactly +10 %: allowed
    week[3, 0] = un * 1.10 + 0.01
    verdicts = weekly_compliance(week, flat(lim.nominal_hz, 4), lim)
    assert verdicts.voltage[:, 0].tolist() == [PASS, FAIL, PASS, FAIL]
    assert verdicts.voltage_outside_always[:, 0].tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(("interconnected", "band", "always"), [(True, 0.01, (-0.06, 0.04)),
                                                                  (False, 0.02, (-0.15, 0.15))])
def test_frequency_bands_for_interconnected_and_island_grids(interconnected, band, always):
    lim = limits_of(CITIES[0], interconnected)
    fn = lim.nominal_hz
    allowed_out = WEEK - int(np.ceil(0.995 * WEEK))  # 5 of 1,008
    rows = flat(fn, 6)
    rows[0, :allowed_out] = fn * (1 - band - 0.001)  # 99.5 % inside: pass
    rows[1, :allowed_out + 1] = fn * (1 - band - 0.001)  # one more: fail
    rows[2, 0] = fn * (1 + always[0])  # on the always limit: pass
    rows[3, 0] = fn * (1 + always[0]) - 0.01
    rows[4, 0] = fn * (1 + always[1])
    rows[5, 0] = fn * (1 + always[1]) + 0.01
    verdicts = weekly_compliance(flat(lim.nominal_v, 6), rows, lim)
    assert verdicts.frequency[:, 0].tolist() == [PASS, FAIL, PASS, FAIL, PASS, FAIL]
    assert verdicts.overall[:, 0].tolist() == [PASS, FAIL, PASS, FAIL, PASS, FAIL]


def test_an_island_grid_allows_what_an_interconnected_one_does_not():
    island, interconnected = limits_of(CITIES[0], False), limits_of(CITIES[0], True)
    freq = flat(island.nominal_hz)
    freq[0, :20] = island.nominal_hz * 0.985  # -1.5 % for 200 minutes
    assert weekly_compliance(flat(island.nominal_v), freq, island).frequency[0, 0] == PASS
    assert weekly_compliance(flat(island.nominal_v), freq, interconnected).frequency[0, 0] == FAIL


def test_missing_values_are_left_out_and_a_thin_week_has_no_verdict():
    lim = limits_of(CITIES[0])
    week = flat(lim.nominal_v, 3)
    week[0, :400] = np.nan  # an interruption: left out, the rest passes
    week[1, : int(WEEK * 0.6)] = np.nan
    week[1, -1] = lim.nominal_v * 0.5  # and what remains fails
    week[2, :] = np.nan
    verdicts = weekly_compliance(week, flat(lim.nominal_hz, 3), lim)
    assert verdicts.voltage[:, 0].tolist() == [PASS, NO_DATA, NO_DATA]
    assert np.isnan(verdicts.voltage_min_v[2, 0]) and verdicts.voltage_coverage[2, 0] == 0
    assert verdicts.overall[:, 0].tolist() == [PASS, NO_DATA, NO_DATA]


def test_many_meters_and_weeks_agree_with_the_slow_twin():
    rng = np.random.default_rng(5)
    lim = limits_of(CITIES[0])
    meters, weeks = 40, 3
    volts = lim.nominal_v * (1 + rng.uniform(0.01, 0.06, (meters, 1)) * rng.standard_normal((meters, weeks * WEEK)))
    volts[rng.random(volts.shape) < 0.05] = np.nan
    volts[3, :WEEK] = np.nan
    freq = lim.nominal_hz * (1 + rng.uniform(0.001, 0.01, (meters, 1)) * rng.standard_normal((meters, weeks * WEEK)))
    verdicts = weekly_compliance(volts, freq, lim)
    for m in range(meters):
        for w in range(weeks):
            part = slice(w * WEEK, (w + 1) * WEEK)
            assert verdicts.voltage[m, w] == naive_power.week_verdict(
                volts[m, part].tolist(), lim.voltage_band_v, lim.voltage_always_v, 0.95, en50160.MIN_COVERAGE)
            assert verdicts.frequency[m, w] == naive_power.week_verdict(
                freq[m, part].tolist(), lim.frequency_band_hz, lim.frequency_always_hz, 0.995, en50160.MIN_COVERAGE)
    assert {PASS, FAIL, NO_DATA} <= set(verdicts.voltage.ravel()) and {PASS, FAIL} <= set(verdicts.frequency.ravel())


def test_slot_means_average_each_meters_readings_per_ten_minutes():
    meter = np.array([0, 0, 0, 1, 1, 5, 0])
    t = np.array([0, 1_000, 600_000, 5_000, 599_999, 0, 10**9])
    value = np.array([200.0, 210.0, 230.0, np.nan, 220.0, 1.0, 1.0])
    means = slot_means(meter, t, value, n_meters=2, start_ms=0, n_slots=2)
    assert means[0].tolist() == [205.0, 230.0]
    assert means[1, 0] == 220.0 and np.isnan(means[1, 1])  # NaN readings and unknown meters ignored


@pytest.mark.parametrize(("volts", "freq", "message"), [
    (np.ones(WEEK), np.ones((1, WEEK)), "2-D"),
    (np.ones((1, WEEK + 1)), np.ones((1, WEEK)), "whole weeks"),
    (np.ones((2, WEEK)), np.ones((1, WEEK)), "meters"),
])
def test_bad_arrays_are_refused_with_the_reason(volts, freq, message):
    with pytest.raises(ValueError, match=message):
        weekly_compliance(volts, freq, limits_of(CITIES[0]))
