"""The state saved incrementally (analytics.statechunks): a save writes the chunks that changed only, loads
back equal, and a save cut short (an exception before the rename, a SIGKILL at a random point) leaves the
last good checkpoint loadable; a truncated or altered chunk is refused like any untrusted file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analytics import state as state_module
from analytics import statechunks
from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from analytics.state import load_state, save_state
from tests.analytics.test_engine import voltage_batches

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 24


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 series from 1 KB up, so a test-sized engine has many."""
    monkeypatch.setattr(statechunks, "CHUNK_ROWS", 4)
    monkeypatch.setattr(statechunks, "MIN_CHUNKED_BYTES", 1024)
    monkeypatch.setattr(statechunks, "MIN_ROW_BYTES", 256)


@pytest.fixture
def small_tiles(monkeypatch, small_chunks):
    """Tiles of 8 series x 64 buckets: 45 a band of 8 series in a 2-day ring of minutes."""
    monkeypatch.setattr(statechunks, "TILE_COLS", 64)
    monkeypatch.setattr(statechunks, "TILE_ROWS", 8)


def filled(registry, devices: int = DEVICES) -> AnalyticsEngine:
    from telemetry_shared.registry import DeviceNew
    names = [f"pwr-{i:04d}" for i in range(devices)]
    for name in names:
        registry.add(DeviceNew(id=name, kind="power", district="bukit-bestari"))
    engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=120, profile_days=2))
    for i, name in enumerate(names):
        for t, raw in voltage_batches(60, hist=True, seed=i):
            engine.ingest(name, raw, t + 200)
    engine.process(now_ms=2_000_000_000_000)
    assert len(engine.learnt.blocks["voltage_v"].keys) == devices
    return engine


def equal_state(a: AnalyticsEngine, b: AnalyticsEngine) -> None:
    for metric, block in a.learnt.blocks.items():
        other = b.learnt.blocks[metric]
        n = len(block.keys)
        assert block.keys == other.keys
        np.testing.assert_array_equal(block.values[:n], other.values[:n])
        np.testing.assert_array_equal(block.times[:n], other.times[:n])
        for name, array in a.learnt.streams[metric].arrays.items():
            np.testing.assert_array_equal(array[:n], b.learnt.streams[metric].arrays[name][:n], err_msg=name)


def test_a_second_save_writes_only_the_chunks_that_changed(registry, tmp_path, small_tiles):
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    first, again, after = {}, {}, {}
    save_state(engine.learnt, path, report=first)
    save_state(engine.learnt, path, report=again)  # nothing changed: only the small file is rewritten
    assert again["written"] == path.stat().st_size and again["size"] == first["size"]
    # One device of 24 has new readings: its chunk (4 series) of each of its arrays is written, not the rest.
    for t, raw in voltage_batches(5, start_ms=1_767_225_600_000 + 60 * 10_000, seq0=60, hist=True):
        engine.ingest("pwr-0005", raw, t + 200)
    engine.process(now_ms=2_000_000_000_000)
    save_state(engine.learnt, path, report=after)
    changed = after["written"] - path.stat().st_size
    assert 0 < changed < (after["size"] - path.stat().st_size) / 4, (changed, after)  # 1 chunk in 6 at most
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(loaded, path)
    equal_state(engine, loaded)
    # The chunks of the earlier saves no longer named are gone.
    manifest = state_module.ChunkedArchive(None, path, np.load(path)["chunks"]).manifest
    named = {f"{d}.npy" for entry in manifest.values() for d in entry["chunks"]}
    assert {f.name for f in statechunks.chunk_dir(path).iterdir()} == named


def manifest_of(path: Path) -> dict:
    return state_module.ChunkedArchive(None, path, np.load(path)["chunks"]).manifest


def equal_history(a: AnalyticsEngine, b: AnalyticsEngine) -> None:
    assert set(a.learnt.history) == set(b.learnt.history)
    for metric, history in a.learnt.history.items():
        other = b.learnt.history[metric]
        for name in ("fine", "fine_newest", "coarse", "coarse_newest", "coarse_open", "coarse_sums", "open_bucket",
                     "sums"):
            np.testing.assert_array_equal(getattr(history, name)[:history.rows],
                                          getattr(other, name)[:history.rows], err_msg=f"{metric} {name}")


def test_a_new_minute_rewrites_only_the_profile_tiles_it_fell_in(registry, tmp_path, small_tiles):
    """Version 6: the profile's rings are indexed by the bucket's number, so a checkpoint after a minute of
    readings from every device rewrites one or two tiles of 64 buckets of each band of series, not 45."""
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    before = manifest_of(path)
    assert before["h0_fine"]["cols"] == 64 and json_version(path) >= 6
    for t, raw in voltage_batches(8, start_ms=1_767_225_600_000 + 60 * 10_000, seq0=60, hist=True):
        for i in range(DEVICES):
            engine.ingest(f"pwr-{i:04d}", raw, t + 200)
    engine.process(now_ms=2_000_000_000_000)
    save_state(engine.learnt, path)
    after = manifest_of(path)
    for name in ("h0_fine", "h1_fine"):
        assert after[name]["rows"] == 8
        tiles = len(after[name]["chunks"]) // (DEVICES // 8)
        assert tiles == 45, tiles  # 2 days of minutes in tiles of 64
        changed = [sum(x != y for x, y in zip(old[k:k + tiles], new[k:k + tiles], strict=True))
                   for old, new in [(before[name]["chunks"], after[name]["chunks"])]
                   for k in range(0, len(new), tiles)]
        assert all(1 <= c <= 2 for c in changed), (name, changed)  # every series had a new minute, in 1-2 tiles
    # (The buffers shift at each reading: their chunks are all rewritten.)
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(loaded, path) and loaded.counters["state_rejected"] == 0
    equal_state(engine, loaded)
    equal_history(engine, loaded)


def test_a_version_5_file_of_row_chunks_still_loads(registry, tmp_path, small_chunks, monkeypatch):
    """A file of the engine before the tiles (version 5: every chunk whole rows) loads as saved."""
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    monkeypatch.setattr(state_module, "VERSION", 5)
    monkeypatch.setattr(statechunks, "TILE_COLS", 10**9)  # nothing is cut by columns, as version 5 did
    save_state(engine.learnt, path)
    assert json_version(path) == 5 and "cols" not in manifest_of(path)["h0_fine"]
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(loaded, path) and loaded.counters["state_rejected"] == 0
    equal_state(engine, loaded)
    equal_history(engine, loaded)


def test_a_manifest_whose_tiles_do_not_add_up_is_refused(registry, tmp_path, small_tiles):
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    with np.load(path) as opened:
        members = {name: opened[name] for name in opened.files}
    manifest = json.loads(members["chunks"].tobytes())
    manifest["h0_fine"]["cols"] = 32  # twice the tiles its chunk list holds
    members["chunks"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    with open(path, "wb") as out:
        np.savez(out, **members)
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert not load_state(loaded, path) and loaded.counters["state_rejected"] == 1
    assert not loaded.learnt.blocks  # a fresh start, the file moved aside


def more_readings(engine: AnalyticsEngine, round_: int, devices: range = range(DEVICES)) -> None:
    """5 more readings (10 s apart) from each of `devices`, after the 60 `filled` gave them."""
    start = 1_767_225_600_000 + (60 + 5 * round_) * 10_000
    for t, raw in voltage_batches(5, start_ms=start, seq0=60 + 5 * round_, hist=True):
        for i in devices:
            engine.ingest(f"pwr-{i:04d}", raw, t + 200)
    engine.process(now_ms=2_000_000_000_000)


def buffer_chunks(path: Path) -> dict[str, list[str]]:
    return {name: entry["chunks"] for name, entry in manifest_of(path).items() if name.startswith("b")}


def test_a_checkpoint_writes_the_new_samples_not_the_whole_buffers(registry, tmp_path, small_chunks):
    """Version 7: the buffers' chunks stay on disk as the base, the samples since are saved as tails; at most
    1 chunk in 8 with tails is rewritten a save (here 1 of 6); every checkpoint loads as the engine was."""
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    rebased = set()
    for round_ in range(10):
        before = buffer_chunks(path)
        more_readings(engine, round_)
        report: dict = {}
        save_state(engine.learnt, path, report=report)
        after = buffer_chunks(path)
        assert set(after) == set(before) == {"b0_times", "b0_values", "b1_times", "b1_values"}
        for name, chunks in after.items():
            changed = [k for k, (x, y) in enumerate(zip(before[name], chunks, strict=True)) if x != y]
            assert len(changed) == 1, (round_, name, changed)  # 6 chunks of 4 series, 1 rewritten a save
            rebased.add((name, changed[0]))
        with np.load(path) as opened:
            assert opened["b0_tail_counts"].sum() > 0 and opened["b0_tail_times"].size == opened["b0_tail_counts"].sum()
        loaded = AnalyticsEngine(registry, None, None, engine.params)
        assert load_state(loaded, path) and loaded.counters["state_rejected"] == 0
        equal_state(engine, loaded)
        equal_history(engine, loaded)
    assert {chunk for name, chunk in rebased if name == "b0_values"} == set(range(6))  # each in turn, none left


def test_a_restarted_engine_goes_on_from_the_bases_it_loaded(registry, tmp_path, small_chunks):
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    restarted = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(restarted, path)
    before = buffer_chunks(path)
    more_readings(restarted, 0)
    save_state(restarted.learnt, path)
    after = buffer_chunks(path)
    assert sum(x != y for x, y in zip(before["b0_values"], after["b0_values"], strict=True)) == 1  # tails, 5 bases
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(loaded, path)
    equal_state(restarted, loaded)


def test_rows_changed_other_than_by_append_are_saved_whole(registry, tmp_path, small_chunks):
    """A block's rows written directly (not through append) do not match their base: saved whole, not lost."""
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    block = engine.learnt.blocks["voltage_v"]
    block.times[:DEVICES, -1] += 1
    block.values[:DEVICES, -1] += 1.0
    save_state(engine.learnt, path)
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(loaded, path)
    equal_state(engine, loaded)


def test_tails_that_do_not_follow_their_base_are_refused(registry, tmp_path, small_chunks):
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    more_readings(engine, 0)
    save_state(engine.learnt, path)
    with np.load(path) as opened:
        members = {name: opened[name] for name in opened.files}
    row = int(np.flatnonzero(members["b0_tail_counts"])[0])
    members["b0_base_last"][row] += 10_000  # the base's newest time is not where its tail says
    with open(path, "wb") as out:
        np.savez(out, **members)
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert not load_state(loaded, path) and loaded.counters["state_rejected"] == 1 and not loaded.learnt.blocks


def test_an_engine_of_an_older_version_refuses_the_file_with_its_version(registry, tmp_path, small_chunks,
                                                                         monkeypatch, caplog):
    """An engine reading up to version 6 would load a version-7 file's bases without their tails: it refuses
    the file, saying which version it is, and starts fresh."""
    from analytics import statefile
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    monkeypatch.setattr(statefile, "READABLE_VERSIONS", (1, 2, 3, 4, 5, 6))
    older = AnalyticsEngine(registry, None, None, engine.params)
    assert not load_state(older, path) and older.counters["state_rejected"] == 1
    assert "state version 7; this engine reads versions (1, 2, 3, 4, 5, 6)" in caplog.text


def json_version(path: Path) -> int:
    return json.loads(np.load(path)["meta"].tobytes())["version"]


def test_a_save_cut_short_leaves_the_last_checkpoint(registry, tmp_path, small_chunks, monkeypatch):
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    before = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(before, path)
    for t, raw in voltage_batches(5, start_ms=1_767_225_600_000 + 60 * 10_000, seq0=60, hist=True):
        for i in range(DEVICES):
            engine.ingest(f"pwr-{i:04d}", raw, t + 200)
    engine.process(now_ms=2_000_000_000_000)

    def power_cut(path, arrays):  # the new chunks are on disk, the file naming them is not
        raise OSError("power cut")

    monkeypatch.setattr(state_module, "_write_atomically", power_cut)
    with pytest.raises(OSError):
        save_state(engine.learnt, path)
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert load_state(loaded, path) and loaded.counters["state_rejected"] == 0
    equal_state(before, loaded)  # the last good checkpoint, whole


def test_a_truncated_chunk_is_refused(registry, tmp_path, small_chunks):
    engine = filled(registry)
    path = tmp_path / "engine-svc-analytics-0.npz"
    save_state(engine.learnt, path)
    chunk = sorted(statechunks.chunk_dir(path).iterdir())[0]
    chunk.write_bytes(chunk.read_bytes()[:-7])
    loaded = AnalyticsEngine(registry, None, None, engine.params)
    assert not load_state(loaded, path) and loaded.counters["state_rejected"] == 1
    assert not path.exists() and not loaded.learnt.blocks  # moved aside, a fresh start


SAVER = """
import sys, time
sys.path.insert(0, {bench!r})
from bench_state import filled_engine
from analytics.state import save_state
from telemetry_shared.registry import Registry
engine = filled_engine(Registry({registry!r}), 600, 1)
block = engine.learnt.blocks["power_kw"]
for i in range(1000):
    for row in range((i * 37) % 600, min((i * 37) % 600 + 50, 600)):  # some series changed since the last save
        block.append(row, [block.last_time(row) + 60_000], [1.0])
    save_state(engine.learnt, {path!r})
    print("saved", i, flush=True)
"""


def test_a_save_killed_at_any_point_leaves_a_loadable_state(tmp_path):
    """A real process saving in a loop (600 devices, ~25 MB a state), SIGKILLed at random points of its saves."""
    from telemetry_shared.registry import Registry
    rng = np.random.default_rng(5)
    for delay_s in rng.uniform(0.0, 1.5, 4):
        path = _kill_mid_save(tmp_path, float(delay_s))
        engine = AnalyticsEngine(Registry(tmp_path / "registry.sqlite3"), None, None, EngineParams())
        assert load_state(engine, path) and engine.counters["state_rejected"] == 0
        assert len(engine.learnt.blocks["power_kw"].keys) == 600


def _kill_mid_save(tmp_path: Path, delay_s: float) -> Path:
    path = tmp_path / "engine-svc-analytics-0.npz"
    code = SAVER.format(bench=str(ROOT / "bench"), registry=str(tmp_path / "registry.sqlite3"), path=str(path))
    saver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert saver.stdout.readline().startswith("saved")  # one whole checkpoint first
        time.sleep(delay_s)
    finally:
        os.kill(saver.pid, signal.SIGKILL)
        saver.wait(timeout=30)
    return path
