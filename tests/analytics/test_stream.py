"""The incremental scorer (analytics.detectors.stream) against score_series over the whole array.

Fed in chunks of any size, with the buffer holding everything before each
chunk, every output of the incremental scorer is the whole-array scorer's:
the combined score, the winning detector, the baseline and the anchor.
"""

import numpy as np
import pytest

from analytics.buffers import CoarseHistory
from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors import score_series
from analytics.detectors.base import DetectorInputError, History
from analytics.detectors.level import robust_baseline
from analytics.detectors.stream import StreamState, Tiers, _older, recent_new, score_new

STEP_MS = 300_000  # five minutes: 288 samples a day
MONDAY = 1_767_546_000_000 - 7 * 3_600_000  # 2026-01-05 00:00 UTC


def city_like(n_series: int, days: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Daily curves (a step at 06:30 on working days), noise, and faults of every kind the detectors know."""
    rng = np.random.default_rng(seed)
    n = days * 288
    t = MONDAY + STEP_MS * np.arange(n)
    hour = (t // 3_600_000) % 24 + ((t // 60_000) % 60) / 60
    weekday = ((t // 86_400_000) + 3) % 7
    working = weekday < 5
    x = np.empty((n_series, n))
    for s in range(n_series):
        base = 50 + 10 * s
        curve = base + 15 * np.sin(2 * np.pi * (hour - 6) / 24) + np.where(working & (hour >= 6.5) & (hour < 18),
                                                                         20, 0)
        x[s] = curve + rng.normal(0, 1 + s % 3, n)
    x[1, 6 * 288 + 100] += 40  # a spike
    x[2, 6 * 288:] += 12  # a level shift
    x[3, 6 * 288 + 50:6 * 288 + 90] = x[3, 6 * 288 + 50]  # stuck
    x[4, 5 * 288:] += np.linspace(0, 30, n - 5 * 288)  # a drift
    x[5, 2000:2040] = np.nan  # a gap
    x[6] = np.round(x[6])  # quantised
    x[7] = 3.0  # constant
    x[8, :400] = np.nan  # a late start
    return x, np.broadcast_to(t, x.shape).copy()


def incremental(x: np.ndarray, times: np.ndarray, chunks: list[int], params: DetectorParams = DEFAULT_PARAMS):
    state = StreamState.empty(params)
    rows = np.arange(x.shape[0])
    parts = []
    end = 0
    width = x.shape[1]
    for size in chunks:
        end += size
        # A ring buffer as the engine's: right-aligned, NaN (time 0) on its left.
        values, at = np.full(x.shape, np.nan), np.zeros(x.shape, dtype=np.int64)
        values[:, width - end:], at[:, width - end:] = x[:, :end], times[:, :end]
        parts.append(score_new(state, rows, values, at, size, params))
    return parts


@pytest.mark.parametrize("chunks", [[1] * 12 + [300] * 4 + [7] * 30 + [5] * 100 + [1] * 200, "day", "two weeks"])
def test_chunks_score_as_the_whole_array(chunks):
    """... and over two weeks, whose second weekend has two weekend days in its profile's week (the first one
    odd on a few series) and the all-days profile breaking their tie (seasonal.day_type_profile)."""
    days = 14 if chunks == "two weeks" else 9
    x, times = city_like(10, days)
    if days == 14:
        x[5:7, 6 * 288 + 150:6 * 288 + 190] -= 25  # an odd first Sunday morning
    if isinstance(chunks, str):
        chunks = [288] * days
    chunks = chunks + [x.shape[1] - sum(chunks)] if sum(chunks) < x.shape[1] else chunks
    whole = score_series(x, times, DEFAULT_PARAMS)
    parts = incremental(x, times, chunks)
    joined = {name: np.concatenate([getattr(p, name) if name in ("combined", "winner") else
                                    getattr(p.baseline, name) for p in parts], axis=1)
              for name in ("combined", "winner", "expected", "scale", "z")}
    np.testing.assert_allclose(joined["combined"], whole.combined, rtol=1e-6, atol=1e-9)
    assert (joined["winner"] == whole.winner)[whole.combined > 0.05].all()
    for name in ("expected", "scale", "z"):
        np.testing.assert_allclose(joined[name], getattr(whole.baseline, name), rtol=1e-6, atol=1e-9, err_msg=name)
    for name in ("profile", "bias", "scale"):
        np.testing.assert_allclose(np.concatenate([getattr(p.anchor, name) for p in parts], axis=1),
                                   getattr(whole.anchor, name), rtol=1e-6, atol=1e-9, err_msg=name)
    # The spike is found, as the whole-array scorer finds it.
    assert joined["combined"][1, 6 * 288 + 100] > 0.5


def test_the_recent_level_alone_goes_on_from_its_state():
    x = city_like(10, 9)[0][:4, :576]
    state = StreamState.empty()
    rows = np.arange(4)
    parts = [recent_new(state, rows, x[:, :end], n) for end, n in ((10, 10), (11, 1), (400, 389), (576, 176))]
    whole = robust_baseline(x)
    np.testing.assert_allclose(np.concatenate([p.z for p in parts], axis=1), whole.z, rtol=1e-9)


def test_a_sample_count_out_of_range_is_refused():
    x, times = city_like(10, 9)
    with pytest.raises(DetectorInputError):
        score_new(StreamState.empty(), np.arange(10), x, times, 0)
    with pytest.raises(DetectorInputError):
        score_new(StreamState.empty(), np.arange(10), x, times, x.shape[1] + 1)


def test_the_history_is_looked_up_where_its_buckets_are_as_in_its_window():
    """The tiers read in place (Tiers) give what seasonal._history_at gives over CoarseHistory.window: the
    fine minutes, the coarse 10-minute means, the open coarse bucket, gaps and a series with no history."""
    rng = np.random.default_rng(5)
    history = CoarseHistory(60_000, 3 * 1440, fine_capacity=1440, coarse_ms=600_000)
    start = MONDAY
    for row in range(5):
        t = start + np.sort(rng.choice(4 * 1440, 3000, replace=False)) * 60_000 + rng.integers(0, 60_000, 3000)
        if row == 3:
            t = t[t < start + 1440 * 60_000]  # only old readings: the fine tier folded into the coarse one
        history.add(row, t, rng.normal(10, 3, t.size))
    history._ensure_rows(6)  # row 5: never a reading
    rows = np.arange(6)
    x = rng.normal(10, 5, (6, 4))
    now = start + 4 * 86_400_000
    targets = [now - rng.integers(0, 4 * 86_400_000, (6, 4)) for _ in range(9)]
    in_place = _older(Tiers(history, rows), targets, x)
    laid_out = _older(History(*history.window(rows)), targets, x)
    for a, b in zip(in_place, laid_out, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(np.stack(in_place)).mean() > 0.5 and np.isnan(np.stack(in_place)[:, 5]).all()
