"""A checkpoint's copy taken in slices between passes (analytics.statecopy) is the whole copy of when it began.

Scoring goes on between the slices (readings appended, series scored, new
devices added, blocks grown), and the copy that comes out, and the file
saved from it, are exactly what a whole copy taken at the beginning gives;
the stream's pause is the beginning or one slice, a small part of the whole
copy's time.
"""

import json
import time

import numpy as np
import pytest

from analytics import statecopy
from analytics.buffers import CoarseHistory
from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from analytics.learnt import LearntState
from analytics.state import save_state, snapshot
from edge import contract
from telemetry_shared.registry import DeviceNew
from telemetry_shared.settings import get_settings

MINUTE_MS = 60_000
DAY_MS = 86_400_000
MONDAY = 1_767_546_000_000  # 2026-01-05 00:00 local (UTC+7)
STEP_MS = 10 * MINUTE_MS
PARAMS = EngineParams(buffer_samples=200)  # a day and a half at 10 minutes: the profile's error ring exists


def reading(device: int, t_ms: int, rng: np.random.Generator) -> float:
    hour = (t_ms % DAY_MS) / 3_600_000
    return round(50 + 20 * np.sin(hour / 24 * 2 * np.pi) + device + rng.normal(0, 1), 2)


def feed(engine: AnalyticsEngine, devices: range, start_ms: int, steps: int, rng: np.random.Generator,
         between=lambda: None, every: int = 1) -> None:
    """`steps` readings of the devices, one pass a step, each device at one step in `every`; `between` runs
    after each pass."""
    for step in range(steps):
        t = start_ms + step * STEP_MS
        for device in devices:
            if (device + step) % every:
                continue
            payload = contract.encode_telemetry(step, [(t, {"power_kw": reading(device, t, rng)})], "1.0")
            engine.ingest(f"pwr-{device:03d}", payload, t + 500)
        engine.process(now_ms=t + 1000)
        between()


@pytest.fixture
def engine(registry) -> AnalyticsEngine:
    district = get_settings().city.slugs[0]  # the city profile's first district
    for device in range(90):
        registry.add(DeviceNew(id=f"pwr-{device:03d}", kind="power", district=district))
    engine = AnalyticsEngine(registry, None, None, PARAMS)
    feed(engine, range(60), MONDAY, 3 * 144, np.random.default_rng(1))  # three days: profiles, error rings
    assert any(e is not None for e in engine.learnt.streams["power_kw"].errors), "no error ring to copy"
    return engine


def arrays_of(learnt: LearntState) -> dict[str, np.ndarray]:
    """Every per-series array of a state, by name, as save_state reads them (the block's rows)."""
    out = {}
    for name, block in [("arrivals", learnt.arrivals), *learnt.blocks.items()]:
        n = len(block.keys)
        out.update({f"{name}.values": block.values[:n], f"{name}.times": block.times[:n],
                    f"{name}.appended": block.appended[:n]})
        history = learnt.history.get(name)
        if history is not None:
            out.update({f"{name}.h.{a}": getattr(history, a)[:min(history.rows, n)] for a in CoarseHistory.ARRAYS})
        stream = learnt.streams.get(name)
        if stream is not None:
            out.update({f"{name}.d.{a}": array[:n] for a, array in stream.arrays.items()})
            out.update({f"{name}.d.errors{p}": e[:n] for p, e in enumerate(stream.errors) if e is not None})
    for key, state in learnt.states.items():
        out.update({f"state.{key}.{f}": getattr(state, f) for f in state.FIELDS})
    out["night_history"] = learnt.night_history
    return out


def assert_same(copy: LearntState, whole: LearntState) -> None:
    ours, theirs = arrays_of(copy), arrays_of(whole)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype and ours[name].shape == theirs[name].shape, name
        assert np.array_equal(ours[name], theirs[name], equal_nan=ours[name].dtype.kind == "f"), name
    for name in ("last_seen_ms", "info", "silence_rows", "peer_scored", "incidents"):
        assert getattr(copy, name) == getattr(whole, name), name
    for metric, block in whole.blocks.items():
        assert copy.blocks[metric].keys == block.keys and copy.blocks[metric].lineage == block.lineage


def test_a_copy_in_slices_with_passes_between_is_the_whole_copy_of_when_it_began(engine, tmp_path):
    whole = snapshot(engine.learnt)  # the whole copy, the reference
    copying = engine.begin_copy()
    copying.slice_rows = 4  # many slices: the copy spans many passes
    rng = np.random.default_rng(2)
    # Passes between the slices: readings in a sixth of the series each, 30 new devices (the blocks grow past
    # their rows): some rows are changed before their slice comes, some after.
    feed(engine, range(90), MONDAY + 3 * DAY_MS, 4, rng, between=copying.step, every=6)
    assert not copying.done and copying.slices == 4
    live = arrays_of(engine.learnt)
    assert not np.array_equal(live["power_kw.values"][:60], arrays_of(whole)["power_kw.values"]), \
        "the state did not change meanwhile: nothing to copy before a change"
    copy = copying.finish()
    assert_same(copy, whole)
    # And the file saved from it is the whole copy's, member for member (the chunks by their digests).
    save_state(copy, tmp_path / "sliced" / "engine-a.npz", now_ms=MONDAY)
    save_state(whole, tmp_path / "whole" / "engine-a.npz", now_ms=MONDAY)
    files = [np.load(tmp_path / name / "engine-a.npz") for name in ("sliced", "whole")]
    assert set(files[0].files) == set(files[1].files)
    for member in files[0].files:
        assert np.array_equal(files[0][member], files[1][member], equal_nan=files[0][member].dtype.kind == "f"), member
    manifest = json.loads(files[0]["chunks"].tobytes())
    assert any(entry["chunks"] for entry in manifest.values()), "no chunk compared"


def test_without_the_copy_before_a_change_the_slices_would_not_be_the_whole_copy(engine, monkeypatch):
    """The test above can fail: rows changed before their slice would be copied as they are later."""
    whole = snapshot(engine.learnt)
    monkeypatch.setattr(statecopy.SlicedCopy, "keep", lambda self, name, row: None)
    copying = engine.begin_copy()
    copying.slice_rows = 4
    feed(engine, range(60), MONDAY + 3 * DAY_MS, 4, np.random.default_rng(2), between=copying.step, every=6)
    with pytest.raises(AssertionError):
        assert_same(copying.finish(), whole)


def test_the_stream_pauses_for_a_slice_not_for_the_whole_copy(engine):
    """The longest pause (the copy's beginning or a slice, CPU time of the engine's thread) is a small part of
    the whole copy's, and does not grow with the series: at 60 series and at 3,060 (rows copied from the first)."""
    learnt = engine.learnt
    block, history, stream = learnt.blocks["power_kw"], learnt.history["power_kw"], learnt.streams["power_kw"]
    extra = 3000
    for device in range(1000, 1000 + extra):  # more series, as the filled rows are
        row = block.row((f"pwr-{device}",))
        block.values[row], block.times[row] = block.values[row % 60], block.times[row % 60]
        history._ensure_rows(row + 1)
        stream.resize(row + 1)
        for name in CoarseHistory.ARRAYS:
            getattr(history, name)[row] = getattr(history, name)[row % 60]
    whole_s = []
    for _ in range(3):
        started = time.thread_time()
        snapshot(learnt)
        whole_s.append(time.thread_time() - started)
    copying = engine.begin_copy()
    copy = copying.finish()
    assert_same(copy, snapshot(learnt))
    assert copying.slices >= (60 + extra) / statecopy.SLICE_ROWS
    # The whole copy takes tens of ms here; one slice copies SLICE_ROWS rows of each array (~1/50 of it).
    assert copying.longest_s < min(whole_s) / 5, (copying.longest_s, min(whole_s))
