"""The peer check beside the stream: how long the engine's thread pauses for it, and what scoring does meanwhile.

    python3 bench/bench_peers_beside.py                  # 5,000 meters in 4 districts, 2 days of minutes
    python3 bench/bench_peers_beside.py --meters 2000 --runs 3

An engine holds `--meters` power meters with two days of per-minute bucket
means (the peer check's window), laid straight into the coarse history, and
one new minute to compare (as live, once a minute). In the same run, `--runs` times each (medians printed):
  inline   AnalyticsEngine.check_peers: the whole comparison on the engine's
           thread (the stream waits for all of it: the baseline);
  beside   check_peers_beside: the pause to lay the grid out, the comparison
           on its own thread, the pause to apply its findings; meanwhile the
           engine's thread runs scoring passes of 200 other series (one new
           reading each), timed against the same passes with nothing beside.
Then the memory of one inline check: tracemalloc's peak above what was traced before it (the grid, the
comparison's temporaries, its scores), in MB and KB a meter.
"""

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import EngineParams  # noqa: E402
from analytics.engine import AnalyticsEngine  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

START_MS = 1_767_546_000_000
MINUTE_MS = 60_000


def filled(registry: Registry, meters: int, rng: np.random.Generator) -> tuple[AnalyticsEngine, int]:
    """An engine whose meters have two days of minute means; returns it and the newest bucket."""
    params = EngineParams()
    engine = AnalyticsEngine(registry, None, None, params)
    learnt = engine.learnt
    districts = [district.slug for district in get_settings().city.districts]
    block = learnt.block("power_kw", params.buffer_samples)
    history = engine._coarse("power_kw")
    size = history.fine_capacity
    newest = START_MS // MINUTE_MS + size
    hours = ((np.arange(newest - size + 1, newest + 1) * MINUTE_MS / 3_600_000) + 7) % 24
    curve = 6 + 4 * np.exp(-((hours - 19) ** 2) / 8)
    for i in range(meters):
        device = f"pwr-{i:05d}"
        block.row((device,))
        learnt.info[device] = ("power", districts[i % len(districts)])
    history._ensure_rows(meters)
    means = curve[None] * rng.uniform(0.8, 1.2, (meters, 1)) * (1 + rng.normal(0, 0.04, (meters, size)))
    buckets = np.arange(newest - size + 1, newest + 1)
    history.fine[:meters, buckets % size] = means
    history.fine_newest[:meters] = newest
    return engine, newest


def passes(engine: AnalyticsEngine, series: int, t_ms: int, until=None, most: int = 1000) -> list[float]:
    """Scoring passes of `series` voltage series, one new reading each, until `until()` (or once); seconds each."""
    block = engine.learnt.block("voltage_v", engine.params.buffer_samples)
    seconds = []
    while True:
        for i in range(series):
            row = block.row((f"pwr-{i:05d}",))
            if block.append(row, np.array([t_ms]), np.array([230.0 + (i % 7) * 0.1])):
                engine.pending["voltage_v"].append((row, 1, False))  # scored, never alerted
        started = time.perf_counter()
        engine.process(t_ms)
        seconds.append(time.perf_counter() - started)
        t_ms += 1000
        if until is None or until() or len(seconds) >= most:
            return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    inline, layout, apply, beside_total, alone, during, count = [], [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry.sqlite3")
        engine, newest = filled(registry, args.meters, rng)
        now_ms = (newest + 2) * MINUTE_MS
        passes(engine, 200, now_ms - 3_600_000)  # warm: the buffers exist, numba compiled
        last = newest - 1  # the newest bucket every meter has closed
        for run in range(args.runs):
            engine.learnt.peer_scored["power_kw"] = last - 1  # one new minute to compare, as live
            started = time.perf_counter()
            engine.check_peers(now_ms)
            inline.append(time.perf_counter() - started)
            engine.learnt.peer_scored["power_kw"] = last - 1
            alone += passes(engine, 200, now_ms + run * 100_000)
            started = time.perf_counter()
            engine.check_peers_beside(now_ms)
            layout.append(time.perf_counter() - started)
            future = engine.peer_running[1]
            seen = passes(engine, 200, now_ms + run * 100_000 + 50_000, until=future.done)
            during += seen
            count.append(len(seen))
            future.result()
            started = time.perf_counter()
            engine.check_peers_beside(now_ms)
            apply.append(time.perf_counter() - started)
            beside_total.append(layout[-1] + sum(seen) + apply[-1])
        tracemalloc.start()  # after the timed runs: tracing slows allocations
        engine.learnt.peer_scored["power_kw"] = last - 1
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        engine.check_peers(now_ms)
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        registry.close()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:9.1f}"

    def ratio(values: list[float]) -> str:
        return f"{statistics.median(values) / statistics.median(inline):.3f}x"

    print(f"{args.meters} meters, 2 days of minute means, median of {args.runs} runs (ms)")
    print(f"inline check_peers (the stream waits)    {ms(inline)}   1.000x")
    print(f"beside: pause to lay the grid out        {ms(layout)}   {ratio(layout)}")
    print(f"beside: pause to apply the findings      {ms(apply)}   {ratio(apply)}")
    print(f"scoring pass of 200 series, alone        {ms(alone)}")
    print(f"scoring pass of 200 series, peers beside {ms(during)}   "
          f"({statistics.median(count):.0f} passes during a comparison)")
    print(f"peak memory of one check (tracemalloc)   {peak / 1e6:9.1f} MB ({peak / args.meters / 1e3:.1f} KB a meter)")

if __name__ == "__main__":
    main()
