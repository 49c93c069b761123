"""Saving and loading the analytics engine's learnt state: seconds, file size, beside a raw write and read.

    python3 bench/bench_state.py                        # 2,000 devices x 8 days of per-minute history
    python3 bench/bench_state.py --devices 500 --metrics 3 --runs 5
    python3 bench/bench_state.py --scored               # with the detectors' state (one pass first)

Saves: a full one (into an empty chunk folder: every chunk written), then incremental ones after 0 %, 1 %
and 100 % of the series (at random rows) changed every array since the previous save: seconds and MB written.
Then a live checkpoint: `--minutes` (15) of one reading a minute in every series fed through the engine's
ingest structures (SeriesBlock.append, CoarseHistory.add), then a save, in the state file's three layouts
saving the same state in the same run (alternating which saves first): version 5 (row chunks only),
version 6 (the profile's rings cut by columns too), version 7 (and the ring buffers as base and tails,
analytics.statetails): seconds, MB written, and bytes written a series. Memory: the bytes of the learnt
arrays a series (allocated).

    python3 bench/bench_state.py --devices 20000 --runs 3 --skip-incremental   # the live checkpoint only
    python3 bench/bench_state.py --devices 20000 --runs 3 --copy-only          # the checkpoint's copy only

The checkpoint beside the stream (`--copy-only`, or after the saves): the whole copy at once then its save
(analytics.state.snapshot, before) against the save reading the state through a copy on write
(analytics.statecopy: the beginning copies the tables, what the engine changes of a row is kept first),
each save into an empty folder, readings appended to a few series every millisecond meanwhile, in the same
run: the stream's pause (CPU time of the engine's thread), the longest read under a block's lock (the most a
change waits), the memory the checkpoint adds (tracemalloc's peak over the copy and the save) and the rows
kept. `--no-whole` skips the whole copy.

An engine is filled as after 8 days of running (EngineParams defaults: a
1,440-sample buffer per series, 2 days of one-minute and 6 of ten-minute bucket means), with
`--metrics` metrics per device plus each device's arrivals (the clock
scorer's delays and the silence check's pace: their times are kept), then
saved with analytics.state.save_state and loaded into a new engine with
load_state, `--runs` times each; medians are printed. The baseline in the
same run is the floor: the same arrays' bytes written to one file with
plain writes and fsync, and read back with numpy.fromfile. Both reads come
from the page cache (the file was just written), as a restart soon after a
save would. The peak memory of one load (tracemalloc) is measured in a
separate pass, as tracing slows the timed ones.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics import state as state_module  # noqa: E402
from analytics import statechunks  # noqa: E402
from analytics.buffers import CoarseHistory, SeriesBlock  # noqa: E402
from analytics.config import EngineParams  # noqa: E402
from analytics.engine import AnalyticsEngine  # noqa: E402
from analytics.learnt import new_history  # noqa: E402
from analytics.state import load_state, save_state, snapshot  # noqa: E402
from analytics.statechunks import chunk_dir  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402

METRICS = ("power_kw", "voltage_v", "current_a", "frequency_hz", "power_factor", "energy_kwh")
START_MS = 1_767_546_000_000


def filled_engine(registry: Registry, devices: int, metrics: int, seed: int = 0,
                  buffer_samples: int | None = None) -> AnalyticsEngine:
    """An engine whose buffers and histories are full, as after 8 days of one reading a minute (buffers of
    `buffer_samples`, default EngineParams')."""
    params = EngineParams() if buffer_samples is None else EngineParams(buffer_samples=buffer_samples)
    engine = AnalyticsEngine(registry, None, None, params)
    rng = np.random.default_rng(seed)
    keys = [(f"pwr-{i:04d}",) for i in range(devices)]
    buckets = params.profile_days * 86_400_000 // params.profile_bucket_ms
    end_ms = START_MS + buckets * params.profile_bucket_ms
    learnt = engine.learnt
    for block in (learnt.arrivals, *(learnt.block(metric, params.buffer_samples) for metric in METRICS[:metrics])):
        for key in keys:
            block.row(key)
        # each device its own second in the minute: identical rows would share chunks (analytics.statechunks)
        second = rng.integers(0, 59_999, (devices, 1))
        block.times[:devices] = end_ms - 60_000 * np.arange(block.capacity)[::-1] + second
        block.values[:devices] = rng.normal(100, 5, (devices, block.capacity))
    for metric in METRICS[:metrics]:
        learnt.history[metric] = history = new_history(params)
        history._ensure_rows(devices)
        newest = end_ms // params.profile_bucket_ms - 1
        history.fine[:devices] = rng.normal(100, 5, (devices, history.fine_capacity))
        history.fine_newest[:devices] = newest
        history.coarse[:devices] = rng.normal(100, 5, (devices, history.coarse_capacity))
        history.coarse_newest[:devices] = (newest - history.fine_capacity) * params.profile_bucket_ms \
            // history.coarse_ms - 1
        history.coarse_open[:devices] = history.coarse_newest[:devices] + 1
        history.coarse_sums[:devices] = (500.0, 5.0, 120_000.0)
        history.open_bucket[:devices] = newest + 1
        history.sums[:devices] = (100.0, 20_000.0, 1.0)
    learnt.last_seen_ms = {key[0]: end_ms for key in keys}
    learnt.info = {key[0]: ("power", "district-a") for key in keys}
    return engine


def score_once(engine: AnalyticsEngine) -> None:
    """One scoring pass over every series (their newest sample, as backfill: no incident), which builds the
    detectors' state (detectors.stream) that the state file keeps beside the buffers."""
    for metric, block in engine.learnt.blocks.items():
        engine.pending[metric] += [(row, 1, False) for row in range(len(block.keys))]
    engine.process(int(engine.learnt.blocks[METRICS[0]].times[0, -1]) + 1000)


def state_arrays(engine: AnalyticsEngine) -> list[np.ndarray]:
    """The arrays the state file holds: buffers, coarse histories, the arrival times."""
    learnt = engine.learnt
    out = [learnt.arrivals.times[:len(learnt.arrivals.keys)]]
    for metric, block in learnt.blocks.items():
        n = len(block.keys)
        out += [block.values[:n], block.times[:n]]
        if metric in learnt.history:
            history = learnt.history[metric]
            out += [getattr(history, name)[:n] for name in CoarseHistory.ARRAYS]
        if metric in learnt.streams:
            stream = learnt.streams[metric]
            out += [array[:n] for array in stream.arrays.values()]
            out += [errors[:n] for errors in stream.errors if errors is not None]
    return out


def save_after_changes(engine: AnalyticsEngine, state: Path, share: float, runs: int) -> tuple[float, int]:
    """Median seconds and bytes written of a save after `share` of the series (picked at random, as devices of
    every pace are interleaved in the rows) changed each of their arrays since the last save."""
    rng = np.random.default_rng(1)
    times, written = [], []
    for _ in range(runs):
        save_state(engine.learnt, state)
        arrivals = engine.learnt.arrivals
        arrivals.times[np.flatnonzero(rng.random(len(arrivals.keys)) < share), -1] += 1
        for metric, block in engine.learnt.blocks.items():
            n = len(block.keys)
            rows = np.flatnonzero(rng.random(n) < share)
            block.values[rows, -1] += 1.0
            block.times[rows, -1] += 1
            history = engine.learnt.history.get(metric)
            if history is not None:
                history.fine[rows, 0] += 1.0
                history.coarse[rows, 0] += 1.0
            stream = engine.learnt.streams.get(metric)
            if stream is not None:
                for array in stream.arrays.values():
                    if array.ndim >= 2 and array.shape[0] >= n:  # per series
                        array[rows] += 1.0
        report: dict = {}
        started = time.perf_counter()
        save_state(engine.learnt, state, report=report)
        times.append(time.perf_counter() - started)
        written.append(report["written"])
    return statistics.median(times), int(statistics.median(written))


def advance(engine: AnalyticsEngine, minutes: int, rng: np.random.Generator) -> None:
    """`minutes` of one reading a minute in every series (and the arrivals), as the engine's ingest() stores
    them: the ring buffers' append, the profile's add."""
    learnt = engine.learnt
    for metric, block in [(None, learnt.arrivals), *learnt.blocks.items()]:
        history = learnt.history.get(metric) if metric else None
        for row in range(len(block.keys)):
            times = block.last_time(row) + 60_000 * np.arange(1, minutes + 1)
            added = block.append(row, times, rng.normal(100, 5, minutes))
            if history is not None and added:
                history.add(row, block.times[row, -added:], block.values[row, -added:])


def live_checkpoints(engine: AnalyticsEngine, folder: Path, minutes: int, runs: int) -> dict[str, tuple]:
    """Per layout (version 5's row chunks, version 6's tiles, version 7's tails), median seconds and bytes written
    of a save after `minutes` of readings in every series since the previous save, all saving the same state."""
    rng = np.random.default_rng(2)
    no_bases = lambda path: {}  # noqa: E731 - every buffer saved whole, as before version 7
    layouts = {"v5 row chunks": (5, 10**9, no_bases), "v6 tiles": (6, statechunks.TILE_COLS, no_bases),
               "v7 tiles+tails": (state_module.VERSION, statechunks.TILE_COLS, state_module.previous_bases)}
    paths = {name: folder / name.replace(" ", "-") / "engine-svc-analytics-0.npz" for name in layouts}
    results: dict[str, tuple[list, list]] = {name: ([], []) for name in layouts}
    saved = state_module.VERSION, statechunks.TILE_COLS, state_module.previous_bases
    try:
        for run in range(runs + 1):  # the first: each layout's previous checkpoint
            if run:
                advance(engine, minutes, rng)
            for name in (list(layouts) if run % 2 else list(layouts)[::-1]):  # alternate which saves first
                state_module.VERSION, statechunks.TILE_COLS, state_module.previous_bases = layouts[name]
                report: dict = {}
                started = time.perf_counter()
                save_state(engine.learnt, paths[name], report=report)
                if run:
                    results[name][0].append(time.perf_counter() - started)
                    results[name][1].append(report["written"])
    finally:
        state_module.VERSION, statechunks.TILE_COLS, state_module.previous_bases = saved
    return {name: (statistics.median(t), int(statistics.median(w))) for name, (t, w) in results.items()}


def append_some(engine: AnalyticsEngine, metric: str, rng: np.random.Generator, rows: int = 8) -> None:
    """One reading appended to `rows` random series, as ingest() does it (through a copy's appending() if open)."""
    learnt = engine.learnt
    block, history = learnt.blocks[metric], learnt.history.get(metric)
    for row in rng.integers(0, len(block.keys), rows).tolist():
        times = [block.last_time(row) + 60_000]
        if engine.copying is None:
            _append_one(block, history, row, times, rng)
        else:
            with engine.copying.appending(metric, row, 1):
                _append_one(block, history, row, times, rng)


def _append_one(block: SeriesBlock, history: CoarseHistory | None, row: int, times: list[int],
                rng: np.random.Generator) -> None:
    if block.append(row, np.array(times), rng.normal(100, 5, 1)) and history is not None:
        history.add(row, block.times[row, -1:], block.values[row, -1:])


def checkpoint_costs(engine: AnalyticsEngine, folder: Path, runs: int, with_whole: bool) -> dict[str, float]:
    """A checkpoint's cost beside the stream, the whole copy then its save (state.snapshot, before) against the
    copy on write read by the save on its thread (analytics.statecopy), in the same run: the stream's pause
    (CPU time of the engine's thread: the copy, or the copy's beginning; and the longest a keep() could wait
    for a read), and the memory the checkpoint adds (tracemalloc's peak over the copy and the save, numpy's
    arrays included). Meanwhile, one reading is appended to 8 random series every millisecond or so."""
    rng = np.random.default_rng(3)
    metric = sorted(engine.learnt.blocks)[0]
    figures: dict[str, list[float]] = {name: [] for name in
                                       ("whole", "whole_peak", "began", "hold", "cow_peak", "kept", "kept_bytes")}
    for run in range(runs):
        if with_whole:
            tracemalloc.start()
            started = time.thread_time()
            copied = snapshot(engine.learnt)
            figures["whole"].append(time.thread_time() - started)
            save_state(copied, folder / f"whole-{run}" / "engine-a.npz")
            figures["whole_peak"].append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            del copied
        tracemalloc.start()
        copying = engine.begin_copy()
        saver = threading.Thread(target=save_state, args=(copying.learnt, folder / f"cow-{run}" / "engine-a.npz"))
        saver.start()
        while saver.is_alive():
            append_some(engine, metric, rng)
            time.sleep(0.001)
        figures["cow_peak"].append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        figures["began"].append(copying.began_s)
        figures["hold"].append(copying.longest_hold_s)
        figures["kept"].append(copying.kept_rows)
        figures["kept_bytes"].append(copying.peak_kept_bytes)
        engine.end_copy()
        shutil.rmtree(folder, ignore_errors=True)
    return {name: statistics.median(values) if values else float("nan") for name, values in figures.items()}


def raw_write(arrays: list[np.ndarray], path: Path) -> None:
    with open(path, "wb") as out:
        for array in arrays:
            out.write(np.ascontiguousarray(array).data)
        out.flush()
        os.fsync(out.fileno())


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=1, choices=range(1, len(METRICS) + 1),
                        help="metrics per device (each with its coarse history), besides the arrivals")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--scored", action="store_true",
                        help="score every series once first, so the file holds the detectors' state too")
    parser.add_argument("--minutes", type=int, default=15, help="readings a series between live checkpoints")
    parser.add_argument("--skip-incremental", action="store_true",
                        help="only the live checkpoint and the load (the synthetic 0/1/100 %% saves skipped)")
    parser.add_argument("--buffer-samples", type=int, default=None,
                        help=f"samples a ring buffer (default {EngineParams().buffer_samples:,}, the engine's)")
    parser.add_argument("--copy-only", action="store_true",
                        help="only the checkpoint beside the stream: whole copy against copy on write")
    parser.add_argument("--no-whole", action="store_true",
                        help="skip the whole copy (at 100,000 series two states may not fit the machine)")
    args = parser.parse_args()
    if not 1 <= args.devices <= 200_000 or not 1 <= args.runs <= 9 or not 1 <= args.minutes <= 1440:
        parser.error("--devices 1..200000, --runs 1..9, --minutes 1..1440 (bounded)")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        registry = Registry(folder / "registry.sqlite3")
        engine = filled_engine(registry, args.devices, args.metrics, buffer_samples=args.buffer_samples)
        if args.scored:
            score_once(engine)
        series = sum(len(b.keys) for b in engine.learnt.blocks.values())
        memory = learnt_nbytes(engine)
        costs = checkpoint_costs(engine, folder / "checkpoints", args.runs, not args.no_whole)
        print_copies(args, series, memory, costs, load_before, engine.params.buffer_samples)
        if args.copy_only:
            registry.close()
            return
        state, raw = folder / "engine-svc-analytics-0.npz", folder / "raw.bin"
        arrays = state_arrays(engine)
        raw_bytes = sum(a.nbytes for a in arrays)

        def full_save() -> None:  # into an empty folder: every chunk written
            shutil.rmtree(chunk_dir(state), ignore_errors=True)
            save_state(engine.learnt, state)

        save_s = median_time(full_save, args.runs)
        shares = () if args.skip_incremental else (0.0, 0.01, 1.0)
        incremental = {share: save_after_changes(engine, state, share, args.runs) for share in shares}
        live = live_checkpoints(engine, folder / "live", args.minutes, args.runs)
        raw_save_s = median_time(lambda: raw_write(arrays, raw), args.runs)

        def load() -> AnalyticsEngine:
            fresh = AnalyticsEngine(registry, None, None, engine.params)
            assert load_state(fresh, state), "the state did not load"
            return fresh

        load_s = median_time(load, args.runs)
        raw_load_s = median_time(lambda: np.fromfile(raw, dtype=np.uint8), args.runs)
        tracemalloc.start()
        load()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        size = state.stat().st_size + sum(f.stat().st_size for f in chunk_dir(state).iterdir())
        registry.close()

    print(f"analytics state: {args.devices:,} devices x {args.metrics} metric(s) = {series:,} series + arrivals; "
          f"series; 8 days of 1-minute buckets and a {engine.params.buffer_samples:,}-sample buffer each; "
          f"median of {args.runs} runs")
    print(f"file: {size / 1e6:,.1f} MB ({size / args.devices / 1e3:,.1f} KB a device; the arrays alone "
          f"{raw_bytes / 1e6:,.1f} MB)")
    print(f"{'':28}{'seconds':>9}{'MB/s':>9}{'vs raw':>8}")
    print(f"{'save_state (atomic, fsync)':28}{save_s:9.2f}{size / 1e6 / save_s:9.0f}{save_s / raw_save_s:7.1f}x")
    for share, (seconds, written) in incremental.items():
        print(f"{f'save, {share:.0%} series changed':28}{seconds:9.2f}{'':9}{seconds / raw_save_s:7.1f}x"
              f"   {written / 1e6:,.1f} MB written")
    for name, (seconds, written) in live.items():
        print(f"{f'live save, {name}':28}{seconds:9.2f}{'':9}{seconds / raw_save_s:7.1f}x"
              f"   {written / 1e6:,.1f} MB written, {written / series / 1e3:,.1f} KB a series"
              f" (after {args.minutes} readings a series)")
    print(f"{'raw write + fsync':28}{raw_save_s:9.2f}{raw_bytes / 1e6 / raw_save_s:9.0f}{1:7.1f}x")
    print(f"{'load_state (checked)':28}{load_s:9.2f}{size / 1e6 / load_s:9.0f}{load_s / raw_load_s:7.1f}x")
    print(f"{'raw read (numpy.fromfile)':28}{raw_load_s:9.2f}{raw_bytes / 1e6 / raw_load_s:9.0f}{1:7.1f}x")
    print(f"peak memory of one load (tracemalloc): {peak / 1e6:,.0f} MB ({peak / size:.1f}x the file)")
    print(f"learnt arrays in memory: {memory / 1e6:,.1f} MB, {memory / series / 1e3:,.1f} KB a series (allocated)")
    for name in ("v6 tiles", "v7 tiles+tails"):
        print(f"live saves, {name} / v5 row chunks: seconds {live[name][0] / live['v5 row chunks'][0]:.2f}, "
              f"bytes written {live[name][1] / live['v5 row chunks'][1]:.2f}")
    print(f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} (2 cores, shared)")


def print_copies(args, series: int, memory: int, costs: dict, load_before: float, buffer: int) -> None:
    print(f"checkpoint beside the stream: {args.devices:,} devices x {args.metrics} metric(s) = {series:,} series, "
          f"{buffer:,}-sample buffers"
          f"{' (scored)' if args.scored else ''}; learnt arrays {memory / 1e6:,.1f} MB, "
          f"{memory / series / 1e3:,.1f} KB a series (allocated); median of {args.runs} runs; pauses in CPU time "
          f"of the engine's thread, memory as tracemalloc's peak over the copy and the save")
    if costs["whole"] == costs["whole"]:
        print(f"  whole copy, then its save (before): pause {costs['whole'] * 1e3:,.1f} ms, "
              f"memory {costs['whole_peak'] / 1e6:,.1f} MB ({costs['whole_peak'] / series / 1e3:,.1f} KB a series)")
    print(f"  copy on write, read by the save (now): pause {costs['began'] * 1e3:,.2f} ms (its beginning), "
          f"longest read under a block's lock {costs['hold'] * 1e3:,.2f} ms, "
          f"memory {costs['cow_peak'] / 1e6:,.1f} MB ({costs['cow_peak'] / series / 1e3:,.1f} KB a series), "
          f"{costs['kept']:,.0f} rows kept before a change ({costs['kept_bytes'] / 1e6:,.1f} MB)")
    if costs["whole"] == costs["whole"]:
        print(f"  now / before: pause {costs['began'] / costs['whole']:.3f}, "
              f"memory {costs['cow_peak'] / costs['whole_peak']:.3f}")
    print(f"  load average before {load_before:.2f}, now {os.getloadavg()[0]:.2f} (2 cores, shared)", flush=True)


def learnt_nbytes(engine: AnalyticsEngine) -> int:
    """Bytes allocated for the learnt arrays: buffers, arrivals, histories, detectors' state."""
    learnt = engine.learnt
    total = sum(a.nbytes for a in (learnt.arrivals.values, learnt.arrivals.times, learnt.arrivals.appended))
    for metric, block in learnt.blocks.items():
        total += block.values.nbytes + block.times.nbytes + block.appended.nbytes
        if metric in learnt.history:
            total += learnt.history[metric].nbytes()
        if metric in learnt.streams:
            total += learnt.streams[metric].nbytes()
    return total


if __name__ == "__main__":
    main()
