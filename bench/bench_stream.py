"""CPU of one scoring pass a series: the whole buffer rescored (the engine before) against the incremental scorer.

    python3 bench/bench_stream.py                       # 512 series, 8 days, 5 passes
    python3 bench/bench_stream.py --series 2048 --passes 7

An engine is fed `--days` days of one-minute readings for `--series` power
meters (bench_memory.fill: the ring buffer and the coarse history, as
ingest() fills them). Then, `--passes` times, every series gets one new
reading and is scored three ways, in the same run, on the same state:

- window: rules.score_metric over each series' whole ring buffer (1,440
  samples) with its coarse history: what the engine did on every pass before
  the incremental scorer;
- incremental: rules.score_metric_new over the new reading only, the
  detectors going on from their state (detectors.stream);
- engine pass: AnalyticsEngine.process() as it runs now (the incremental
  scorer, the hysteresis and the incident lifecycle).

Printed: process CPU time (ms) a series a pass, median over the passes, and
the ratio window / incremental. One warm-up pass first (numba compiles, and
each series' detector state is built from its buffer).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import MINUTE_MS, fill  # noqa: E402

from analytics.config import EngineParams  # noqa: E402
from analytics.engine import AnalyticsEngine  # noqa: E402
from analytics.rules import score_metric  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402

METRIC = "power_kw"


def new_readings(engine: AnalyticsEngine, series: int, now_ms: int, rng: np.random.Generator) -> None:
    """One new reading on every series, appended as ingest() appends it and queued for the next pass."""
    block = engine.learnt.blocks[METRIC]
    for row in range(series):
        added = block.append(row, np.array([now_ms]), np.array([5 + rng.normal(0, 0.2)]))
        engine._coarse(METRIC).add(row, block.times[row, -added:], block.values[row, -added:])
        engine.pending[METRIC].append((row, added, True))


def cpu(work) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=512)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry.sqlite3")
        engine = AnalyticsEngine(registry, None, None, EngineParams())
        now_ms = fill(engine, args.series, args.days, rng)
        rows = np.arange(args.series)
        block = engine.learnt.blocks[METRIC]
        new_readings(engine, args.series, now_ms, rng)
        warm = cpu(lambda: engine.process(now_ms + 1000))  # builds each series' state from its buffer
        window, incremental, whole_pass = [], [], []
        for i in range(1, args.passes + 1):
            t = now_ms + i * MINUTE_MS
            new_readings(engine, args.series, t, rng)
            window.append(cpu(lambda: score_metric(METRIC, block.values[rows], block.times[rows], engine.detector,
                                                   history=engine._history(METRIC, rows))))
            state_before = engine.learnt.streams[METRIC].copy()
            incremental.append(cpu(lambda: engine._score_new(METRIC, rows, np.ones(rows.size, dtype=np.int64))))
            engine.learnt.streams[METRIC] = state_before  # the engine pass below scores the same reading
            whole_pass.append(cpu(lambda at=t + 1000: engine.process(at)))
        registry.close()
    per = 1e3 / args.series
    w, s, p = (statistics.median(v) * per for v in (window, incremental, whole_pass))
    print(f"{args.series} series x {args.days} days of one-minute readings, {args.passes} passes of one new reading"
          " a series; process CPU ms a series a pass (median)")
    print(f"window (whole buffer rescored, before)  {w:8.3f}")
    print(f"incremental scorer (now)                {s:8.3f}   ratio window/incremental {w / s:6.1f}x")
    print(f"engine pass (process(), now)            {p:8.3f}   ratio window/engine pass {w / p:6.1f}x")
    print(f"first pass (state built from buffers)   {warm * per:8.3f}")
    print(f"at 100,000 series, one reading a minute: {p * 100_000 / 1e3:.1f} CPU s a minute (engine pass)")


if __name__ == "__main__":
    main()
