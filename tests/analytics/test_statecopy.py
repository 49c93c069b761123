"""A checkpoint's copy on write (analytics.statecopy) reads the state as it was when it began, without a second copy.

Scoring goes on while the save reads it (readings appended, series scored,
new devices added, blocks grown), and what it reads, and the file saved from
it, are exactly what a whole copy taken at the beginning gives; it holds only
the rows changed meanwhile; the stream's pause is its beginning, a small part
of the whole copy's time.
"""

import json
import threading
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
         between=lambda: None, every: int = 1, batch: int = 1) -> None:
    """`steps` readings of the devices, each device at one step in `every`, `batch` steps in one message a device
    (as a duty-cycled device sends them) and one pass a message; `between` runs after each pass. The days of
    history the tests start from go 12 steps a message: a twelfth of the messages and passes (a fixture's three
    days took ~10 s a test one step at a time)."""
    for first in range(0, steps, batch):
        chunk = range(first, min(first + batch, steps))
        for device in devices:
            times = [start_ms + step * STEP_MS for step in chunk if not (device + step) % every]
            if times:
                samples = [(t, {"power_kw": reading(device, t, rng)}) for t in times]
                engine.ingest(f"pwr-{device:03d}", contract.encode_telemetry(first, samples, "1.0"), times[-1] + 500)
        engine.process(now_ms=start_ms + chunk[-1] * STEP_MS + 1000)
        between()


@pytest.fixture
def engine(registry) -> AnalyticsEngine:
    district = get_settings().city.slugs[0]  # the city profile's first district
    for device in range(90):
        registry.add(DeviceNew(id=f"pwr-{device:03d}", kind="power", district=district))
    engine = AnalyticsEngine(registry, None, None, PARAMS)
    # three days: profiles, error rings
    feed(engine, range(60), MONDAY, 3 * 144, np.random.default_rng(1), batch=12)
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


def save_members(tmp_path, name: str, learnt: LearntState) -> dict[str, np.ndarray]:
    save_state(learnt, tmp_path / name / "engine-a.npz", now_ms=MONDAY)
    with np.load(tmp_path / name / "engine-a.npz") as file:
        return {member: file[member] for member in file.files}


def assert_same_files(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert ours.keys() == theirs.keys()
    for member in ours:
        assert np.array_equal(ours[member], theirs[member], equal_nan=ours[member].dtype.kind == "f"), member
    manifest = json.loads(ours["chunks"].tobytes())
    assert any(entry["chunks"] for entry in manifest.values()), "no chunk compared"


def test_the_copy_read_after_passes_is_the_whole_copy_of_when_it_began(engine, tmp_path):
    whole = snapshot(engine.learnt)  # the whole copy, the reference
    copying = engine.begin_copy()
    # Passes before the save reads: readings in a sixth of the series each, 30 new devices (the blocks grow past
    # their rows), every changed row kept first.
    feed(engine, range(90), MONDAY + 3 * DAY_MS, 4, np.random.default_rng(2), every=6)
    live = arrays_of(engine.learnt)
    assert not np.array_equal(live["power_kw.values"][:60], arrays_of(whole)["power_kw.values"]), \
        "the state did not change meanwhile: nothing to copy before a change"
    assert_same(copying.whole(), whole)
    # And the file saved through the views is the whole copy's, member for member (the chunks by their digests).
    assert_same_files(save_members(tmp_path, "cow", copying.learnt), save_members(tmp_path, "whole", whole))


def test_a_save_on_its_own_thread_while_passes_run_writes_the_state_of_when_it_began(engine, tmp_path):
    """As the service does it: the save reads on its thread while the engine's thread scores; whatever the
    interleaving, the file is the whole copy's."""
    whole = snapshot(engine.learnt)
    reference = save_members(tmp_path, "whole", whole)
    copying = engine.begin_copy()
    saver = threading.Thread(target=save_state, args=(copying.learnt, tmp_path / "cow" / "engine-a.npz", MONDAY))
    saver.start()
    feed(engine, range(90), MONDAY + 3 * DAY_MS, 6, np.random.default_rng(4), every=3)
    saver.join(60)
    with np.load(tmp_path / "cow" / "engine-a.npz") as file:
        assert_same_files({member: file[member] for member in file.files}, reference)


def test_without_the_copy_before_a_change_the_views_would_read_the_later_state(engine, monkeypatch):
    """The tests above can fail: rows changed before the save reads them would be saved as they are later."""
    whole = snapshot(engine.learnt)
    monkeypatch.setattr(statecopy.CopyOnWrite, "keep", lambda self, name, row: None)
    copying = engine.begin_copy()
    feed(engine, range(60), MONDAY + 3 * DAY_MS, 4, np.random.default_rng(2), every=6)
    with pytest.raises(AssertionError):
        assert_same(copying.whole(), whole)


def test_it_holds_the_changed_rows_only_and_nothing_once_closed(engine):
    """The checkpoint's memory beside the state is the rows changed while it is read, not a second state; closed,
    it keeps nothing more and its views refuse to be read (they would be the engine's live rows)."""
    learnt = engine.learnt
    whole_bytes = sum(array.nbytes for array in arrays_of(snapshot(learnt)).values())
    copying = engine.begin_copy()
    feed(engine, range(60), MONDAY + 3 * DAY_MS, 1, np.random.default_rng(5), every=6)  # 10 of the 60 series
    changed = copying.kept_rows
    assert 10 <= changed <= 20  # each series' row of its metric, and its arrival row
    assert 0 < copying.peak_kept_bytes < whole_bytes / 4, (copying.peak_kept_bytes, whole_bytes)
    held = sum(group.held_bytes() for group in copying.groups.values())
    # the error rings were held whole over the pass of their block, then only what the pass shifted out of them
    assert copying.kept_bytes == held < copying.peak_kept_bytes
    engine.end_copy()
    assert engine.copying is None and copying.kept_bytes == 0
    with pytest.raises(RuntimeError):
        np.asarray(copying.learnt.blocks["power_kw"].values)


def test_the_stream_pauses_for_the_beginning_not_for_a_whole_copy(engine):
    """The pause (the copy's beginning, CPU time of the engine's thread) is a small part of the whole copy's, and
    does not grow with the series: at 3,060 series (rows copied from the first 60)."""
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
    assert_same(copying.whole(), snapshot(learnt))
    # The whole copy takes tens of ms here; the beginning copies the tables, not the arrays.
    assert copying.began_s < min(whole_s) / 5, (copying.began_s, min(whole_s))


def test_the_views_refuse_what_they_cannot_read_as_the_array_would(engine):
    """A save reads row slices, [rows, columns] gathers and [rows, a row's index]; anything else is an error, not
    a silently wrong array."""
    copying = engine.begin_copy()
    values = copying.learnt.blocks["power_kw"].values
    live = engine.learnt.blocks["power_kw"].values[:60]
    assert values.shape == live.shape and values.dtype == live.dtype and values[:1].nbytes == live[:1].nbytes
    assert np.array_equal(values[5:9][:, -3:], live[5:9, -3:], equal_nan=True)
    rows, columns = np.array([3, 0, 59]), np.array([-1, 0, 7])
    assert np.array_equal(values[rows, columns], live[rows, columns], equal_nan=True)
    for bad in (slice(0, 10, 2), 3, (np.array([60]), np.array([0])), (np.array([[1]]), np.array([[1]])), "x"):
        with pytest.raises((TypeError, IndexError)):
            values[bad]


def test_blocks_grown_in_place_while_a_save_reads_give_the_state_of_when_it_began(registry, tmp_path, monkeypatch):
    """The blocks' arrays grow in their reserved mappings (analytics.buffers.grown: every growth, here from the
    first), the old array object and the new one sharing their rows: the engine's keep() before a change still
    gives the save the state of when it began, on its own thread as in the service."""
    from analytics import buffers  # noqa: PLC0415
    monkeypatch.setattr(buffers, "RESERVE_FROM_BYTES", 0)
    district = get_settings().city.slugs[0]
    for device in range(150):
        registry.add(DeviceNew(id=f"pwr-{device:03d}", kind="power", district=district))
    engine = AnalyticsEngine(registry, None, None, PARAMS)
    # past the 64 first rows: in the mapping
    feed(engine, range(70), MONDAY, 3 * 144, np.random.default_rng(1), batch=12)
    before = engine.learnt.blocks["power_kw"].values
    whole = snapshot(engine.learnt)
    reference = save_members(tmp_path, "whole", whole)
    copying = engine.begin_copy()
    saver = threading.Thread(target=save_state, args=(copying.learnt, tmp_path / "cow" / "engine-a.npz", MONDAY))
    saver.start()
    feed(engine, range(150), MONDAY + 3 * DAY_MS, 6, np.random.default_rng(4), every=3)  # 80 new series: grown
    saver.join(60)
    after = engine.learnt.blocks["power_kw"].values
    assert after.shape[0] > before.shape[0] and after.ctypes.data == before.ctypes.data, "not grown in place"
    with np.load(tmp_path / "cow" / "engine-a.npz") as file:
        assert_same_files({member: file[member] for member in file.files}, reference)
    engine.end_copy()
    second = engine.begin_copy()  # and a copy begun after the growth reads what the engine holds now
    assert_same(second.whole(), snapshot(engine.learnt))


def feed_batches(engine: AnalyticsEngine, devices: range, start_ms: int, steps: int, rng: np.random.Generator) -> None:
    """Messages of 3 readings a step (10 minutes apart), one pass a step; every 5th message repeats a reading
    already appended and carries one older than the row's newest (the buffer refuses it): an append shifts the
    row by fewer samples than the message holds."""
    for step in range(steps):
        t = start_ms + 3 * step * STEP_MS
        for device in devices:
            samples = [(t + j * STEP_MS, {"power_kw": reading(device, t + j * STEP_MS, rng)}) for j in range(3)]
            if step % 5 == 4:
                samples += [(t - STEP_MS, {"power_kw": 1.0}), (t - 10 * STEP_MS, {"power_kw": 2.0})]
            engine.ingest(f"pwr-{device:03d}", contract.encode_telemetry(step, samples, "1.0"), t + 2 * STEP_MS + 500)
        engine.process(now_ms=t + 2 * STEP_MS + 1000)


def kept_of_kind(copying: statecopy.CopyOnWrite, kind: str) -> list[tuple[statecopy._Group, int, int]]:
    """(group, source index, row) of everything kept of this kind (statecopy's RING, CELLS, COUNTS, WHOLE, ERRS)."""
    return [(group, index, int(row)) for group in copying.groups.values() for index in group.by_kind.get(kind, ())
            for row in np.flatnonzero(group.masks[index])]


def test_what_is_kept_of_a_row_is_what_the_append_and_the_pass_changed(engine):
    """A reading appended and scored changes a few cells of a row: the samples its shift pushes out of the ring
    buffer, a bucket or two of the profile tiers, the detectors' state (kept whole); the copy keeps that, not
    the row of every array (~30 KB a series at the defaults, as it did)."""
    learnt = engine.learnt
    n = len(learnt.blocks["power_kw"].keys)
    whole = snapshot(learnt)
    row_bytes = sum(array.nbytes for name, array in arrays_of(whole).items()
                    if name.startswith(("power_kw.", "arrivals."))) / n  # a series' row, its device's arrivals
    copying = engine.begin_copy()
    feed(engine, range(60), MONDAY + 3 * DAY_MS, 1, np.random.default_rng(5), every=6)  # 10 of the 60 series
    assert 10 <= copying.kept_rows <= 20
    whole_rows = 10 * row_bytes  # what keeping the changed rows whole held
    assert copying.peak_kept_bytes < whole_rows / 5, (copying.peak_kept_bytes, whole_rows)
    ring = kept_of_kind(copying, statecopy.RING)
    assert ring and all(group.kept(index, row).shape == (1,) for group, index, row in ring)  # one sample left
    cells = kept_of_kind(copying, statecopy.CELLS)  # the cells' positions then their values: a bucket or two
    assert cells and all(group.kept(index, row).size <= 4 for group, index, row in cells)
    assert_same(copying.whole(), whole)


def test_rings_shifted_past_their_length_and_batches_with_refused_samples_read_as_they_were(engine, tmp_path):
    """While the copy is read: messages of several readings (some refused: older, repeated), more samples than
    the ring holds (the whole row leaves it), buckets folded from the fine tier into the coarse one; what the
    save reads, and the file, are the whole copy's of the beginning."""
    whole = snapshot(engine.learnt)
    reference = save_members(tmp_path, "whole", whole)
    copying = engine.begin_copy()
    capacity = engine.learnt.blocks["power_kw"].capacity
    feed_batches(engine, range(0, 60, 7), MONDAY + 3 * DAY_MS, capacity // 3 + 3, np.random.default_rng(6))
    feed(engine, range(60), MONDAY + 6 * DAY_MS, 2, np.random.default_rng(7), every=4)
    ring = kept_of_kind(copying, statecopy.RING)
    assert any(group.kept(index, row).shape[0] == capacity for group, index, row in ring), "no ring wrapped whole"
    assert any(0 < group.kept(index, row).shape[0] < capacity for group, index, row in ring)
    names = {id(getattr(copying.learnt.history["power_kw"], name).group.sources[
        getattr(copying.learnt.history["power_kw"], name).index]): name for name in statecopy.TIERS}
    tiers = {names.get(id(group.sources[index])) for group, index, _ in kept_of_kind(copying, statecopy.CELLS)}
    assert tiers == {"fine", "coarse"}, tiers
    assert_same(copying.whole(), whole)
    assert_same_files(save_members(tmp_path, "cow", copying.learnt), reference)


def error_rings_kept(copying: statecopy.CopyOnWrite) -> list[tuple[statecopy._Group, int, int]]:
    return kept_of_kind(copying, statecopy.ERRS)


def test_error_rings_keep_the_samples_the_passes_shifted_out_and_read_as_they_were(engine, tmp_path):
    """Series with a profile (their error rings written by every pass): passes of several readings during a save
    shift each row's ring; the copy keeps the samples that left it (a few of the buffer's 200), not the row, and
    reads, and saves, the rings of the beginning."""
    # A fourth day first: every sample of the rings is then an error (after three days their oldest 57 are NaN,
    # from before the profile), so a kept sample wrong or out of place is seen, not NaN read for NaN.
    feed(engine, range(60), MONDAY + 3 * DAY_MS, 144, np.random.default_rng(8), batch=12)
    stream = engine.learnt.streams["power_kw"]
    rings = [p for p, e in enumerate(stream.errors) if e is not None]
    assert rings and all(np.isfinite(stream.errors[p][:60]).all() for p in rings), "rings not full of errors"
    whole = snapshot(engine.learnt)
    reference = save_members(tmp_path, "whole", whole)
    copying = engine.begin_copy()
    steps = 4
    feed_batches(engine, range(0, 60, 7), MONDAY + 4 * DAY_MS, steps, np.random.default_rng(9))  # 3 a pass
    feed(engine, range(60), MONDAY + 5 * DAY_MS, 3, np.random.default_rng(10), every=3)  # 1 a pass, once each
    kept = error_rings_kept(copying)
    width = engine.learnt.blocks["power_kw"].capacity
    assert {row for _, _, row in kept} == set(range(60)), "a scored row's error ring not kept"
    for group, index, row in kept:
        assert 1 <= group.kept(index, row).shape[0] <= 3 * steps + 2 < width, row  # the samples shifted out
        assert not group.inflated[index]  # none left whole after its pass
    assert_same(copying.whole(), whole)
    assert_same_files(save_members(tmp_path, "cow", copying.learnt), reference)


def test_an_error_ring_not_shifted_as_told_stays_whole(engine, monkeypatch):
    """settle() keeps less of a row only where the live row is the rest of it bit for bit: told a wrong shift, it
    keeps the rows whole, and the copy still reads the beginning."""
    settle = statecopy.CopyOnWrite.settle
    monkeypatch.setattr(statecopy.CopyOnWrite, "settle",
                        lambda self, name, rows, shifts: settle(self, name, rows, [s + 1 for s in shifts]))
    whole = snapshot(engine.learnt)
    copying = engine.begin_copy()
    feed(engine, range(60), MONDAY + 3 * DAY_MS, 2, np.random.default_rng(11), every=6)
    kept = error_rings_kept(copying)
    width = engine.learnt.blocks["power_kw"].capacity
    assert kept and all(group.kept(index, row).shape[0] == width for group, index, row in kept)
    assert_same(copying.whole(), whole)


@pytest.mark.parametrize("kind", [statecopy.RING, statecopy.CELLS, statecopy.COUNTS, statecopy.WHOLE,
                                  statecopy.ERRS])
def test_a_kept_slice_wrong_or_missing_is_seen(engine, kind):
    """The tests above can fail for each kind of what is kept: one kept value changed, or one row's kept part
    dropped, and the copy no longer reads as the whole copy of the beginning."""
    whole = snapshot(engine.learnt)
    copying = engine.begin_copy()
    feed_batches(engine, range(0, 60, 7), MONDAY + 3 * DAY_MS, 4, np.random.default_rng(8))
    assert_same(copying.whole(), whole)
    kept = kept_of_kind(copying, kind)
    assert kept, f"nothing kept as {kind}"
    group, index, row = kept[0]
    held = group.kept(index, row)
    if kind == statecopy.CELLS:  # positions, then the values' bits
        held = held[held.size // 2:].view(group.sources[index].dtype)
    held = held.reshape(-1)
    saved = held.copy()
    if held.dtype.kind == "f":
        held[-1] = 12345.5 if np.isnan(held[-1]) else -held[-1] - 1
    else:
        held[-1] += 1
    with pytest.raises(AssertionError):
        assert_same(copying.whole(), whole)
    held[:] = saved
    assert_same(copying.whole(), whole)
    group.masks[index][row] = False
    with pytest.raises(AssertionError):
        assert_same(copying.whole(), whole)
