"""The analytics engine's memory peak during a scoring pass: resident memory above the engine's steady level.

    python3 bench/bench_pass_peak.py                          # 20,000 devices of one metric, 3 passes
    python3 bench/bench_pass_peak.py --block-rows 0           # every series of a pass at once (before)
    python3 bench/bench_pass_peak.py --devices 2000 --rebuilds 2000 --passes 1   # a first pass building every state

An engine is filled as after 8 days of one reading a minute (bench_state.filled_engine: `--devices` devices of
`--metrics` metrics, their buffers, profiles and arrivals). A first pass builds each series' detectors' state from
its buffer, `--rebuilds` series a pass (EngineParams.rebuilds_per_pass, the engine's budget: default 100, the
setting's default), passes repeated until every series has one. Then `--passes` times, every series gets `--per`
new readings and every device one message (its arrival delay, for the clock scorer), and the engine scores them
(AnalyticsEngine.process). Printed for the first of the rebuild passes and each later pass: the resident memory
before it (VmRSS, after a garbage collection), the peak during it above that (VmHWM, reset before the pass through
/proc/self/clear_refs), per series, the pass' CPU time, and the alerts it raised with a digest of them (the same
digest for any `--block-rows`: the results do not depend on it).

`--block-rows N` sets the engine's and the clock scorer's block (analytics.config.PASS_BLOCK_ROWS: series scored at
once in a pass; 0: all at once, the engine before blocks). Run each setting in its own process (a process's peak
and its allocator's free memory stay), one after the other, to compare. Linux only (/proc).
"""

import argparse
import gc
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_state import METRICS, filled_engine  # noqa: E402

from analytics.config import PASS_BLOCK_ROWS, EngineParams  # noqa: E402
from analytics.engine import AnalyticsEngine  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402


def status_bytes(name: str) -> int:
    """A figure of /proc/self/status in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {name} in /proc/self/status")


def new_readings(engine: AnalyticsEngine, per: int, rng: np.random.Generator) -> int:
    """`per` new readings a minute apart on every series and one live message of every device, as ingest() stores
    them; returns the newest reading's time."""
    learnt = engine.learnt
    newest_ms = 0
    for metric, block in learnt.blocks.items():
        history = learnt.history.get(metric)
        for row in range(len(block.keys)):
            times = block.last_time(row) + 60_000 * np.arange(1, per + 1)
            added = block.append(row, times, rng.normal(100, 5, per))
            if history is not None and added:
                history.add(row, block.times[row, -added:], block.values[row, -added:])
            engine.pending[metric].append((row, added, True))
            newest_ms = max(newest_ms, int(times[-1]))
    arrivals = learnt.arrivals
    for key in arrivals.keys:
        engine.clock.observe(arrivals, key[0], newest_ms + int(rng.integers(200, 900)), newest_ms)
    return newest_ms


def measured_pass(engine: AnalyticsEngine, now_ms: int, series: int, label: str) -> None:
    gc.collect()
    before = status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.process_time()
    sent = engine.process(now_ms)
    cpu = time.process_time() - started
    peak = status_bytes("VmHWM") - before
    digest = hashlib.sha256(repr(sent).encode()).hexdigest()[:12]  # every alert message, in order
    print(f"{label:30s} {before / 1e6:9,.1f} {peak / 1e6:9,.1f} {peak / series / 1e3:8.1f} {cpu:8.2f}"
          f" {len(sent):6d} {digest}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--metrics", type=int, default=1)
    parser.add_argument("--per", type=int, default=1, help="new readings a series a pass")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--rebuilds", type=int, default=EngineParams().rebuilds_per_pass,
                        help="series whose state a pass builds from the buffer (the engine's budget)")
    parser.add_argument("--block-rows", type=int, default=PASS_BLOCK_ROWS,
                        help=f"series scored at once (default {PASS_BLOCK_ROWS}; 0: all at once)")
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry.sqlite3")
        engine = filled_engine(registry, args.devices, args.metrics)
        engine.params = EngineParams(rebuilds_per_pass=args.rebuilds)
        engine.block_rows = engine.clock.block_rows = args.block_rows
        series = args.devices * args.metrics
        now_ms = int(engine.learnt.blocks[METRICS[0]].times[0, -1]) + 1000
        for metric in engine.learnt.blocks:  # numba compiles on a few series, outside what is measured
            engine.pending[metric] += [(row, 1, False) for row in range(min(16, args.devices))]
        engine.process(now_ms)
        print(f"{args.devices:,} devices x {args.metrics} metric(s) = {series:,} series, block rows "
              f"{args.block_rows or 'all'}, rebuilds a pass {args.rebuilds}, {args.per} new reading(s) a series a pass")
        print(f"{'pass':30s} {'RSS MB':>9s} {'peak+ MB':>9s} {'KB/ser.':>8s} {'CPU s':>8s} {'alerts':>6s} digest")
        for metric, block in engine.learnt.blocks.items():
            engine.pending[metric] += [(row, 1, False) for row in range(16, len(block.keys))]
        measured_pass(engine, now_ms, series, f"first rebuild pass ({min(args.rebuilds, series):,})")
        while any(engine.pending.values()):
            engine.process(now_ms)
        for i in range(args.passes):
            now_ms = new_readings(engine, args.per, rng) + 1000
            measured_pass(engine, now_ms, series, f"pass {i + 1}: {args.per} new a series")
        registry.close()


if __name__ == "__main__":
    main()
