"""One lag's look-up of the daily profile (season_kernels.lag_lookup) on its own, outputs already touched.

    python3 bench/bench_lag_lookup.py                          # 2,000 series x 1,440 samples at 5 minutes
    python3 bench/bench_lag_lookup.py --series 1 --samples 1000000

Run it from two checkouts in turns to compare two versions of the kernel. Printed: CPU ms a call (the
minimum and the median of --runs calls) and M looked-up values a second (series x samples / median).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import DAY_MS  # noqa: E402
from analytics.detectors import season_kernels  # noqa: E402

STEP_MS = 300_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=1440)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (args.series, args.samples)
    x = rng.normal(size=shape)
    smooth = x + 0.1
    t = 1_767_225_600_000 + STEP_MS * np.arange(args.samples, dtype=np.int64)
    latest = (t + 2 * STEP_MS)[None]
    found = np.zeros(shape)  # touched: the page faults of fresh outputs are not the kernel's
    index = np.empty(args.samples, dtype=np.int32)
    day_off = np.zeros(args.samples * STEP_MS // DAY_MS + 16, dtype=np.bool_)
    first_day = int(t[0] // DAY_MS) - 8

    def call() -> None:
        season_kernels.lag_lookup(t, DAY_MS, STEP_MS / 2, index, True, True, smooth, latest, 2, x, found,
                                  True, 1, day_off, first_day, 0, DAY_MS)

    call()  # compile or load numba's cache
    seconds = []
    for _ in range(args.runs):
        start = time.process_time()
        call()
        seconds.append(time.process_time() - start)
    seconds.sort()
    median = seconds[len(seconds) // 2]
    print(f"lag_lookup, {args.series:,} series x {args.samples:,} samples: min {seconds[0] * 1e3:.1f} ms, "
          f"median {median * 1e3:.1f} ms CPU a call, {x.size / median / 1e6:.0f} M values/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
