"""rules.Hysteresis: the compiled step against the plain one-series reference (tests/analytics/reference.py)."""

from dataclasses import replace

import numpy as np
import pytest

from analytics.config import DEFAULT_PARAMS
from analytics.detectors import Anchor
from analytics.rules import Hysteresis
from tests.analytics import reference

LEVELS = [0.0, 0.1, 0.31, 0.5, 0.8, 0.85, 0.97, 0.99, np.nan]
WEIGHTS = [0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.1]


def _case(seed: int, series: int, steps: int) -> tuple[np.ndarray, Anchor, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.choice(LEVELS, size=(series, steps), p=WEIGHTS)
    values = rng.normal(0, 3, (series, steps))
    values[rng.random(values.shape) < 0.05] = np.nan
    anchor = Anchor(rng.normal(0, 1, values.shape), rng.normal(0, 1, values.shape),
                    np.abs(rng.normal(1, 1, values.shape)))
    anchor.scale[rng.random(values.shape) < 0.03] = 0.0  # a zero scale: an infinite departure, not an error
    anchor.bias[rng.random(values.shape) < 0.03] = np.nan
    return score, anchor, values


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("hold", [False, True])
def test_step_fed_in_batches_is_the_reference_series_by_series(seed: int, hold: bool) -> None:
    params = replace(DEFAULT_PARAMS, clear_samples=2 + seed % 7, confirm_samples=1 + seed % 3,
                     hold_max_samples=5 + 3 * seed)
    score, anchor, values = _case(seed, 4, 300)
    state, parts = Hysteresis(), []
    for part in np.array_split(np.arange(score.shape[1]), 1 + seed % 4):  # the state carries over batches
        kwargs = {"values": values[:, part], "anchor": Anchor(anchor.profile[:, part], anchor.bias[:, part],
                                                                anchor.scale[:, part])} if hold else {}
        parts.append(state.step(score[:, part], params, **kwargs))
    active = np.concatenate(parts, axis=1)
    for s in range(score.shape[0]):
        grids = (values[s], anchor.profile[s], anchor.bias[s], anchor.scale[s]) if hold else None
        assert active[s].tolist() == reference.hysteresis(score[s].tolist(), params, grids), f"series {s}"
    assert active.any() and not active.all()


def test_rows_step_only_their_own_series() -> None:
    score, anchor, values = _case(99, 3, 120)
    together, apart = Hysteresis(), Hysteresis()
    both = together.step(score, values=values, anchor=anchor)
    for s in (2, 0, 1):  # one series at a time, out of order: the same flags and the same state
        rows = np.array([s])
        flags = apart.step(score[rows], rows=rows, values=values[rows],
                           anchor=Anchor(anchor.profile[rows], anchor.bias[rows], anchor.scale[rows]))
        assert flags[0].tolist() == both[s].tolist()
    for name in Hysteresis.FIELDS:
        assert np.array_equal(getattr(apart, name), getattr(together, name), equal_nan=True), name


def test_hold_starts_exactly_where_the_calibrated_departure_reaches_clear_score() -> None:
    from analytics.detectors.base import calibrate
    from analytics.rules import _hold_z

    z = _hold_z(DEFAULT_PARAMS)
    assert calibrate(np.array([z]))[0] >= DEFAULT_PARAMS.clear_score
    assert calibrate(np.array([np.nextafter(z, 0)]))[0] < DEFAULT_PARAMS.clear_score
