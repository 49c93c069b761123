"""Points scored per second: the vectorised detectors against a per-series
pandas baseline and a plain numpy pass, on the same array, in one run.

    python3 bench/bench_analytics.py                 # 10,000 series x 1,440 samples (1 day at 1 min)
    python3 bench/bench_analytics.py --series 2000 --runs 5
    python3 bench/bench_analytics.py --step-minutes 5   # 1,440 samples = 5 days: the daily profile runs

Each method is run `--runs` times; the median wall time is reported, with
points per second, the ratio to the plain numpy pass (the memory-bandwidth
floor: one read of the array, one write of the result) and the peak memory
numpy allocated for it (tracemalloc). The pandas baseline does, on one
DataFrame of all series (DataFrame.ewm, pandas' compiled EWMA over every
column at once, its fastest honest form), what the core of the detectors does:
an EWMA level, an EWMA of the absolute deviation, and the z of each sample
against the previous level (pandas cannot clip the updates, so it does a
little less work than robust_baseline).

The recursions (Holt, CUSUM, the row surprise) run compiled with numba, a
required dependency.
"""

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import DEFAULT_PARAMS  # noqa: E402
from analytics.detectors import robust_baseline, score_series  # noqa: E402


def make_data(n_series: int, n_samples: int, seed: int = 0, step_minutes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A daily curve scaled per series, noise sd 1, 1 % missing, a sample every step_minutes."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples)
    curve = 50 + 10 * np.sin(2 * np.pi * t * step_minutes / 1440)
    values = curve[None] * rng.uniform(0.5, 2, (n_series, 1)) + rng.normal(0, 1, (n_series, n_samples))
    values[rng.random(values.shape) < 0.01] = np.nan
    times = 1_767_225_600_000 + 60_000 * step_minutes * t
    return values, times


def plain_numpy(values: np.ndarray) -> np.ndarray:
    """One read, one write: each sample's z against its series' mean and standard deviation."""
    mean = np.nanmean(values, axis=1, keepdims=True)
    std = np.nanstd(values, axis=1, keepdims=True)
    return (values - mean) / std


def pandas_frame(values: np.ndarray) -> np.ndarray:
    """The core statistic in pandas' fastest honest form: one DataFrame (time x series), DataFrame.ewm over all
    columns at once (its compiled EWMA), no Python loop over series."""
    import pandas as pd

    alpha = DEFAULT_PARAMS.level_alpha
    frame = pd.DataFrame(values.T)
    level = frame.ewm(alpha=alpha, ignore_na=True).mean().shift(1)
    error = frame - level
    deviation = error.abs().ewm(alpha=alpha, ignore_na=True).mean().shift(1)
    return (error / (deviation * DEFAULT_PARAMS.mad_to_sigma)).to_numpy().T


def engine_pass(devices: int, buffer: int) -> tuple[float, float, float]:
    """(seconds for one scoring pass after every meter sent one new reading, seconds to fill the buffers,
    KB of coarse profile history per series)."""
    import tempfile

    from analytics.config import EngineParams
    from analytics.engine import AnalyticsEngine
    from edge import contract
    from telemetry_shared.registry import DeviceNew, Registry
    from telemetry_shared.settings import get_settings

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        registry = Registry(Path(folder) / "registry.sqlite3")
        ids = [f"pwr-{i:05d}" for i in range(devices)]
        for device in ids:
            registry.add(DeviceNew(id=device, kind="power", district=get_settings().city.slugs[0]))
        engine = AnalyticsEngine(registry, params=EngineParams(buffer_samples=buffer))
        now = 1_767_225_600_000
        start = time.perf_counter()
        for device in ids:  # a full buffer of history per meter, in messages of 128 samples
            for first in range(0, buffer, 128):
                samples = [(now - (buffer - k) * 60_000, {"voltage_v": 229 + float(rng.normal()),
                                                          "power_kw": 5 + float(rng.normal())})
                           for k in range(first, min(buffer, first + 128))]
                engine.ingest(device, contract.encode_telemetry(first, samples, "b", hist=True), now)
        engine.process(now)
        fill = time.perf_counter() - start
        for device in ids:
            raw = contract.encode_telemetry(buffer, [(now, {"voltage_v": 229.0, "power_kw": 5.0})], "b")
            engine.ingest(device, raw, now + 1000)
        start = time.perf_counter()
        engine.process(now + 1000)
        seconds = time.perf_counter() - start
        registry.close()
        histories = list(engine.learnt.history.values())
        kb = sum(h.nbytes() for h in histories) / max(1, sum(h.rows for h in histories)) / 1e3
        return seconds, fill, kb


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median seconds, peak MB traced during one extra run)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1_440)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pandas-series", type=int, default=None,
                        help="series for the pandas baseline (default all; it is timed per point)")
    parser.add_argument("--engine-devices", type=int, default=1000)
    parser.add_argument("--step-minutes", type=int, default=1,
                        help="minutes between samples; 5 gives 1,440 samples five days, so the daily profile runs")
    args = parser.parse_args()
    values, times = make_data(args.series, args.samples, step_minutes=args.step_minutes)
    points = values.size
    pandas_rows = args.pandas_series or args.series
    methods = [
        ("plain numpy pass (floor)", lambda: plain_numpy(values), points),
        ("robust_baseline (Holt + Huber, all series)", lambda: robust_baseline(values), points),
        ("score_series (all detectors, all series)", lambda: score_series(values, times), points),
        ("score_series with the row score's evidence (with_evidence)",
         lambda: score_series(values, times, with_evidence=True), points),
        (f"pandas DataFrame.ewm, one frame ({pandas_rows:,} series)", lambda: pandas_frame(values[:pandas_rows]),
         pandas_rows * args.samples),
    ]
    score_series(values[:2, :64], times[:64])  # compile (or load numba's cache) outside the timings
    print(f"{args.series:,} series x {args.samples:,} samples every {args.step_minutes} min = {points:,} points; "
          f"input {values.nbytes / 1e6:.0f} MB; median of {args.runs} runs")
    print(f"{'method':<48} {'seconds':>9} {'Mpoints/s':>10} {'vs numpy':>9} {'peak MB':>8}")
    floor = None
    for name, fn, n in methods:
        seconds, peak = measure(fn, args.runs if "pandas" not in name else 1)
        rate = n / seconds
        floor = floor or rate
        print(f"{name:<48} {seconds:>9.3f} {rate / 1e6:>10.2f} {floor / rate:>8.1f}x {peak:>8.0f}")
    for devices in (10, args.engine_devices):
        seconds, _, kb = engine_pass(devices, args.samples)
        print(f"engine pass, {devices:,} meters x 3 series (voltage, power, clock), {args.samples:,}-sample buffers, "
              f"one new reading each: {seconds:.3f} s; "
              f"profile history {kb:.0f} KB a series")


if __name__ == "__main__":
    main()
