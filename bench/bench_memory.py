"""What one series costs the analytics engine in memory, after 8 days of one reading a minute.

    python3 bench/bench_memory.py                      # 256 series of one metric
    python3 bench/bench_memory.py --series 2048 --days 8

An engine is fed `--days` days of one-minute readings for `--series` power
meters (one metric each) through the same structures its ingest() uses (the
ring buffer, then the daily profile's coarse history), in hour-long batches.
Printed: the bytes its learnt arrays hold per series (allocated, as numpy
reports them; before any pass: no detectors' state nor error ring), the
growth of the process' resident memory per series (what the operating system
sees: arrays, Python objects, allocator slack) and the time of one scoring
pass over every series with one new reading each, the whole of the engine's
per-minute work at one reading a minute. The budget
(issue 22): < 40 KB a series, so 100,000 series fit in 4 GB.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import EngineParams  # noqa: E402
from analytics.engine import AnalyticsEngine  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

START_MS = 1_767_546_000_000
MINUTE_MS = 60_000


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def learnt_bytes(engine: AnalyticsEngine) -> int:
    """Bytes of every numpy array the engine's learnt state holds (buffers, histories, incident states)."""
    seen: set[int] = set()
    total = 0

    def walk(obj: object, depth: int = 0) -> None:
        nonlocal total
        if depth > 4 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for value in obj[:8]:  # key lists: Python objects, counted in the RSS figure only
                walk(value, depth + 1)
        elif hasattr(obj, "__dict__"):
            for value in vars(obj).values():
                walk(value, depth + 1)

    walk(engine.learnt)
    return total


def fill(engine: AnalyticsEngine, series: int, days: int, rng: np.random.Generator) -> int:
    """Feed `days` of one-minute readings for `series` meters, an hour at a time; returns the last time."""
    minutes = days * 1440
    learnt = engine.learnt
    block = learnt.block("power_kw", engine.params.buffer_samples)
    rows = [block.row((f"pwr-{i:05d}",)) for i in range(series)]
    for i in range(series):
        learnt.info[f"pwr-{i:05d}"] = ("power", get_settings().city.districts[0].slug)
    daily = 5 + 2 * np.sin(2 * np.pi * np.arange(1440) / 1440)
    for hour in range(0, minutes, 60):
        times = START_MS + MINUTE_MS * np.arange(hour, hour + 60) + 17_000
        for row in rows:
            values = daily[np.arange(hour, hour + 60) % 1440] + rng.normal(0, 0.2, 60)
            added = block.append(row, times, values)
            if added and engine.params.profile_days > 0:
                engine._coarse("power_kw").add(row, block.times[row, -added:], block.values[row, -added:])
    return int(START_MS + MINUTE_MS * minutes)


def scoring_pass(engine: AnalyticsEngine, series: int, now_ms: int, rng: np.random.Generator) -> float:
    """Seconds of one pass with one new reading on every series."""
    block = engine.learnt.blocks["power_kw"]
    for row in range(series):
        added = block.append(row, np.array([now_ms]), np.array([5 + rng.normal(0, 0.2)]))
        engine._coarse("power_kw").add(row, block.times[row, -added:], block.values[row, -added:])
        engine.pending["power_kw"].append((row, added, True))
    start = time.perf_counter()
    engine.process(now_ms + 1000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=256)  # a multiple of 64: no rows allocated ahead
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--buffer-samples", type=int, default=EngineParams().buffer_samples,
                        help="samples a ring buffer (default: the engine's)")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry.sqlite3")
        engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=args.buffer_samples))
        before = rss_bytes()
        start = time.perf_counter()
        now_ms = fill(engine, args.series, args.days, rng)
        filled_s = time.perf_counter() - start
        grown = rss_bytes() - before
        arrays = learnt_bytes(engine)
        scoring_pass(engine, args.series, now_ms, rng)  # the first pass compiles the recursions (numba)
        seconds = scoring_pass(engine, args.series, now_ms + MINUTE_MS, rng)
        peak = rss_bytes() - before
        registry.close()
    print(f"{args.series} series x {args.days} days of one-minute readings, {args.buffer_samples:,}-sample buffers "
          f"(filled in {filled_s:.1f} s)")
    print(f"learnt arrays      {arrays / args.series / 1e3:8.1f} KB a series (allocated)")
    print(f"resident growth    {grown / args.series / 1e3:8.1f} KB a series (RSS after filling)")
    print(f"after two passes   {peak / args.series / 1e3:8.1f} KB a series (RSS: numba's compiler and the passes'"
          " temporaries included, kept by the allocator)")
    print(f"one scoring pass   {seconds:8.3f} s ({seconds / args.series * 1e3:.2f} ms a series)")


if __name__ == "__main__":
    main()
