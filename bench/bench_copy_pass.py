"""What a checkpoint's copy on write keeps when passes score every series while the save reads (analytics.statecopy).

    python3 bench/bench_copy_pass.py --devices 2000 --buffer-samples 720 --passes 1 --runs 3

An engine filled as after 8 days (bench_state.filled_engine: full buffers and profile tiers), every series scored
until each has its detectors' state and its profile fit's error ring (float32, one a buffer sample). Then, per
run: a copy begun (engine.begin_copy(), as a checkpoint does), `--passes` times one reading appended to every
series (through the copy's appending(), as ingest does) and a pass scoring them all (engine.process), the copy
read whole (what the save reads), closed. Printed, medians over the runs: the bytes the copy keeps at the end
and at its peak (its own count, CopyOnWrite.kept_bytes / peak_kept_bytes), a series; tracemalloc's peak over
the passes (the passes' temporaries and what is kept); the passes' wall time (under tracemalloc, which slows
Python's allocations: --no-tracemalloc to time them as they run).
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_state import filled_engine  # noqa: E402

from analytics.engine import AnalyticsEngine  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402


def score_all(engine: AnalyticsEngine, now_ms: int) -> None:
    """Every series scored once (its state rebuilt over its buffer), within the engine's rebuilds a pass."""
    for metric, block in engine.learnt.blocks.items():
        engine.pending[metric] += [(row, 1, False) for row in range(len(block.keys))]
    while any(engine.pending.values()):
        engine.process(now_ms)


def one_reading_each(engine: AnalyticsEngine, rng: np.random.Generator) -> int:
    """One reading appended to every series (as backfill: no incident), through the copy if one is open; the
    newest time."""
    newest = 0
    for metric, block in engine.learnt.blocks.items():
        history = engine.learnt.history.get(metric)
        for row in range(len(block.keys)):
            times = np.array([block.last_time(row) + 60_000])
            with engine.copying.appending(metric, row, 1):
                added = block.append(row, times, rng.normal(100, 5, 1))
                if added and history is not None:
                    history.add(row, block.times[row, -1:], block.values[row, -1:])
            engine.pending[metric].append((row, added, False))
            newest = max(newest, int(times[0]))
    return newest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--buffer-samples", type=int, default=720)
    parser.add_argument("--passes", type=int, default=1, help="passes over every series during one save")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="time the passes without tracemalloc (it slows Python's allocations; no traced peak)")
    args = parser.parse_args()
    if not 1 <= args.devices <= 50_000 or not 1 <= args.runs <= 9 or not 1 <= args.passes <= 20:
        parser.error("--devices 1..50000, --runs 1..9, --passes 1..20 (bounded)")
    rng = np.random.default_rng(4)
    path = args.dir / f"bench-copy-pass-{os.getpid()}.sqlite3"
    registry = Registry(path)
    try:
        engine = filled_engine(registry, args.devices, 1, buffer_samples=args.buffer_samples)
        metric = next(iter(engine.learnt.blocks))
        score_all(engine, int(engine.learnt.blocks[metric].times[0, -1]) + 1000)
        stream = engine.learnt.streams[metric]
        rings = [e for e in stream.errors if e is not None]
        finite = sum(int(np.isfinite(e[:args.devices, -1]).sum()) for e in rings)
        series = args.devices
        figures: dict[str, list[float]] = {"end": [], "peak": [], "traced": [], "wall": []}
        for _ in range(args.runs):
            copying = engine.begin_copy()
            if not args.no_tracemalloc:
                tracemalloc.start()
            started = time.perf_counter()
            for _ in range(args.passes):
                now = one_reading_each(engine, rng)
                engine.process(now + 1000)
            figures["wall"].append(time.perf_counter() - started)
            figures["traced"].append(tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0)
            tracemalloc.stop()
            figures["end"].append(copying.kept_bytes)
            figures["peak"].append(copying.peak_kept_bytes)
            copying.whole()  # what the save reads (all of it, through the views)
            engine.end_copy()
        med = {name: statistics.median(values) for name, values in figures.items()}
        print(f"{series:,} series, {args.buffer_samples:,}-sample buffers, {len(rings)} error ring(s) "
              f"({finite:,} rows with a finite newest error), {args.passes} pass(es) over every series during a "
              f"save; medians of {args.runs}")
        print(f"  kept at the end {med['end'] / 1e6:,.2f} MB ({med['end'] / series:,.0f} B a series), "
              f"peak {med['peak'] / 1e6:,.2f} MB ({med['peak'] / series:,.0f} B a series); tracemalloc peak over "
              f"the passes {med['traced'] / 1e6:,.1f} MB; passes {med['wall']:.2f} s wall; "
              f"load {os.getloadavg()[0]:.2f}")
    finally:
        registry.close()
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
