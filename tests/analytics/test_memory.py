"""What a series costs the engine in memory (issue 22: < 40 KB a series), and that the shorter ring buffer that
brings it there scores a city of one reading a minute exactly as the longer one did.

At one reading a minute a ring buffer of 1,440 samples held 23 h 59 min: the profile's lookups a day back (the
same local time yesterday) and the profile error's hour a day back never found their reading in it and were
answered by the coarse history, which keeps two days of minutes. So every reading beyond the detectors' few
newest samples (intervals, the night window) was memory for nothing; 720 samples keep half a day.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from telemetry_shared.registry import DeviceNew
from telemetry_shared.settings import get_settings
from tests.analytics.test_state import DAY_MS, HOUR_MS, MONDAY, POWER, WATER, day_messages, run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_state import filled_engine, learnt_nbytes, score_once  # noqa: E402

BUDGET = 40_000  # bytes a series, allocated (issue 22: 100,000 series in 4 GB)


@pytest.fixture
def engines(registry):
    district = get_settings().city.slugs[0]  # the city profile's first district
    registry.add(DeviceNew(id=POWER, kind="power", district=district))
    registry.add(DeviceNew(id=WATER, kind="water", district=district))
    return lambda samples: AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=samples))


@pytest.mark.parametrize("samples", [EngineParams().buffer_samples, 256])
def test_at_one_reading_a_minute_the_default_buffer_scores_as_1440_samples(engines, samples):
    """Three days of a building's power (cooling on at 06:33:20 on working days) and a water meter, a chiller
    stuck on the third day and a leak from its night: every output of every pass, the night-flow and
    silence checks, and the detectors' state at the end are the same with the default buffer as with 1,440,
    and with 256 samples (4 h 16 min: the night window's 2 h and the detectors' newest samples, what
    analytics/README.md offers a city of meters that read once a minute or slower)."""
    assert EngineParams().buffer_samples < 1440
    messages = day_messages(0) + day_messages(1) + day_messages(2, fault_from_ms=MONDAY + 2 * DAY_MS + 10 * HOUR_MS,
                                                                 leak_from_ms=MONDAY + 2 * DAY_MS + HOUR_MS)
    long, short = engines(1440), engines(samples)
    outputs = run(long, messages)
    assert any(out for out in outputs), "no alert in three days: nothing compared"
    assert run(short, messages) == outputs
    for metric, stream in long.learnt.streams.items():
        other = short.learnt.streams[metric]
        for name, array in stream.arrays.items():
            assert np.array_equal(array, other.arrays[name], equal_nan=True), (metric, name)
        for errors, theirs in zip(stream.errors, other.errors, strict=True):
            assert (errors is None) == (theirs is None)
            if errors is not None:  # the newest positions, which both rings hold
                assert np.array_equal(errors[:, -theirs.shape[1]:], theirs, equal_nan=True), metric


def test_what_a_series_costs_stays_within_the_budget(tmp_path):
    """2,000 series of bench_state's engine (8 days of one reading a minute), scored, with their arrival
    blocks: the learnt arrays allocated (buffers, profile tiers, detectors' state and error rings, arrivals)
    are < 40 KB a series; with the 1,440-sample buffers of before they were not."""
    from telemetry_shared.registry import Registry

    def per_series(samples: int | None) -> float:
        registry = Registry(tmp_path / f"registry-{samples}.sqlite3")
        engine = filled_engine(registry, 2000, 1, buffer_samples=samples)
        score_once(engine)
        stream = engine.learnt.streams["power_kw"]
        if stream.errors[0] is None:  # the error ring every series with a profile has: allocated as it would be
            stream.resize(2000)
            stream.errors[0] = np.full((stream.rows, engine.params.buffer_samples), np.nan, dtype=np.float32)
        registry.close()
        return learnt_nbytes(engine) / 2000

    assert per_series(None) < BUDGET
    assert per_series(1440) > BUDGET


def test_a_block_grows_in_its_reserved_mapping_without_a_copy():
    """The blocks' per-series arrays grow by rows in place (analytics.buffers.grown): past RESERVE_FROM_BYTES the
    rows move once into a mapping with room for RESERVE_ROWS, then every growth is a longer view of it, with the
    rows kept and the new ones filled, the old array object still valid and showing the same rows."""
    from analytics import buffers  # noqa: PLC0415
    width = 720
    rows = buffers.RESERVE_FROM_BYTES // (width * 8) + 1  # just past the threshold
    array = np.arange(rows * width, dtype=np.float64).reshape(rows, width)
    first = buffers.grown(array, rows + 10, np.nan)
    assert np.array_equal(first[:rows], array) and np.isnan(first[rows:]).all() and first.shape == (rows + 10, width)
    second = buffers.grown(first, rows + 100, np.nan)
    assert second.ctypes.data == first.ctypes.data, "the second growth copied the rows"
    assert np.array_equal(second[:rows], array) and np.isnan(second[rows:]).all()
    second[3, 5] = -1.0  # a change through the new object is seen through the old one (the engine's in-place writes)
    assert first[3, 5] == -1.0
    ints = buffers.grown(np.zeros((rows, width), dtype=np.int64), rows + 1, -1)
    assert ints.dtype == np.int64 and (ints[rows:] == -1).all()
    broadcast = buffers.grown(np.zeros((rows, 2, width // 2)), rows + 2, np.arange(width // 2, dtype=np.float64))
    assert np.array_equal(broadcast[rows + 1, 1], np.arange(width // 2))
    assert buffers.growth(128_000) == 128_000 // buffers.GROWTH_RESERVED  # a fine step: the growth copies nothing
    small = np.ones((4, 3))  # under the threshold: a concatenation, as before
    assert np.array_equal(buffers.grown(small, 6, 0.0), np.r_[small, np.zeros((2, 3))])
    assert buffers.grown(small, 4, 0.0) is small


def test_a_growth_past_the_reservation_moves_the_rows_once(monkeypatch):
    from analytics import buffers  # noqa: PLC0415
    monkeypatch.setattr(buffers, "RESERVE_FROM_BYTES", 0)
    monkeypatch.setattr(buffers, "RESERVE_ROWS", 8)
    array = buffers.grown(np.arange(6.0).reshape(3, 2), 5, 7.0)  # a mapping of 4 x 5 = 20 rows (RESERVE_ROWS: 8)
    assert buffers.grown(array, 20, 7.0).ctypes.data == array.ctypes.data
    moved = buffers.grown(array, 21, 7.0)
    assert moved.ctypes.data != array.ctypes.data and moved.shape == (21, 2)
    assert np.array_equal(moved[:3], np.arange(6.0).reshape(3, 2)) and (moved[3:] == 7.0).all()
