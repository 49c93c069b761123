"""A file's own cycle (detectors.period): found from its learning rows, and judged by a profile of that period."""

import numpy as np
import pytest

from analytics.config import CSV_PARAMS
from analytics.csvscore import Table, score_rows
from analytics.detectors.period import found_period

STRENGTH = CSV_PARAMS.own_cycle_strength


def cycle(shape: str, period: int, n: int, seed: int = 0) -> np.ndarray:
    phase = (np.arange(n) % period) / period
    wave = {"sine": np.sin(2 * np.pi * phase), "square": np.where(phase < 0.4, 1.0, -1.0), "saw": 2 * phase - 1}[shape]
    return 100 + 20 * wave + np.random.default_rng(seed).normal(0, 1, n)


@pytest.mark.parametrize("shape", ["sine", "square", "saw"])
@pytest.mark.parametrize("period", [17, 24, 40, 90])
def test_a_cycle_is_found_at_its_period(shape, period):
    assert found_period(cycle(shape, period, 400), STRENGTH) == pytest.approx(period, abs=0.5)


def test_a_period_between_whole_rows_is_read_from_its_multiples():
    phase = np.arange(1440) / 37.5
    y = 50 + 10 * np.sin(2 * np.pi * phase) + np.random.default_rng(2).normal(0, 0.5, 1440)
    assert found_period(y, STRENGTH) == pytest.approx(37.5, abs=0.1)


def test_noise_a_walk_a_trend_and_too_few_cycles_have_no_period():
    rng = np.random.default_rng(1)
    assert found_period(rng.normal(0, 1, 1440), STRENGTH) == 0
    assert found_period(np.cumsum(rng.normal(0, 1, 1440)), STRENGTH) == 0
    assert found_period(np.arange(1440) * 0.1 + rng.normal(0, 1, 1440), STRENGTH) == 0
    assert found_period(cycle("sine", 288, 371), STRENGTH) == 0  # a day of five-minute readings: 1.3 cycles
    assert found_period(np.full(500, 3.0), STRENGTH) == 0
    assert found_period(np.array([]), STRENGTH) == 0


def test_missing_readings_do_not_hide_the_cycle():
    y = cycle("sine", 30, 600)
    y[::7] = np.nan
    assert found_period(y, STRENGTH) == pytest.approx(30, abs=0.5)


def rows_export(y: np.ndarray) -> Table:
    """A file whose times are its row numbers (1, 2, 3, ... read as epoch seconds)."""
    return Table(None, [], 0, 1, (np.arange(y.size, dtype=np.int64) + 1) * 1000, y)


@pytest.mark.parametrize("shape", ["sine", "square", "saw"])
def test_a_spike_inside_a_short_cycles_swing_is_found_and_the_clean_cycle_stays_quiet(shape):
    """Without a profile of the cycle, a reading was judged against a slow level whose spread was the whole swing
    (20 against noise 1): a spike of 8 noise sigmas within it scored 0. Now it scores >= 0.9 and is the file's top,
    and the same file without it has no row at 0.9."""
    y = cycle(shape, 24, 1420, seed=3)
    spiked = y.copy()
    spiked[1000] += 8
    scores = score_rows(rows_export(spiked)).score
    assert scores[1000] >= 0.9 and int(np.argmax(scores)) == 1000
    assert score_rows(rows_export(y)).score.max() < 0.9


def test_without_a_cycle_of_its_own_a_file_scores_as_before():
    """A daily cycle (a day of five-minute readings learnt: no own cycle found) scores bit for bit as with the
    own cycle switched off."""
    from dataclasses import replace

    n = 6 * 288
    times = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 300_000
    y = cycle("sine", 288, n, seed=4)
    y[5 * 288] += 9
    table = Table(None, [], 0, 1, times, y)
    np.testing.assert_array_equal(score_rows(table).score,
                                  score_rows(table, replace(CSV_PARAMS, own_cycle_strength=0.0)).score)
