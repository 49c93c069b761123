"""What local days in the city's real zone cost the daily profile: seasonal_expected over per-minute
readings, with a fixed offset, a zone that keeps one offset (Asia/Singapore) and a daylight-saving zone
(America/New_York, whose lags are moved to the same local time). Runs interleaved, medians and ratios
against the fixed offset measured in the same run (the machine is shared and noisy).

    .venv/bin/python bench/bench_localtime.py [--series 50] [--rounds 9]
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analytics.config import DEFAULT_PARAMS  # noqa: E402
from analytics.detectors.seasonal import seasonal_expected  # noqa: E402

MONDAY_MS = 1_772_409_600_000  # 2026-03-02 00:00 UTC: eight days that hold New York's spring transition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    times = MONDAY_MS + np.arange(1440 * 8, dtype=np.int64)[None, :] * 60_000 + np.zeros((args.series, 1), np.int64)
    values = np.random.default_rng(1).normal(size=times.shape)
    cases = {"fixed offset -5": replace(DEFAULT_PARAMS, utc_offset_h=-5),
             "Asia/Singapore": replace(DEFAULT_PARAMS, utc_offset_h=8, time_zone="Asia/Singapore"),
             "America/New_York": replace(DEFAULT_PARAMS, utc_offset_h=-5, time_zone="America/New_York")}
    for params in cases.values():
        seasonal_expected(values[:2], times[:2], 86_400_000, params)  # warm the zone caches
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, params in cases.items():
            started = time.perf_counter()
            seasonal_expected(values, times, 86_400_000, params)
            runs[name].append(time.perf_counter() - started)
    base = float(np.median(runs["fixed offset -5"]))
    points = values.size
    print(f"seasonal_expected, {args.series} series x 8 days per minute ({points:,} points), {args.rounds} rounds")
    for name, seconds in runs.items():
        median = float(np.median(seconds))
        print(f"  {name:18s} median {median * 1000:7.1f} ms  {points / median / 1e6:5.2f} M points/s  "
              f"ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
