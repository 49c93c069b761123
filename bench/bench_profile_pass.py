"""CPU time of the compiled passes of a block with a daily profile (kernels.profile_pass, kernels.drift_pass)
against what they replaced, on the same block, in one process, taking turns.

    python bench/bench_profile_pass.py                 # 1,024 series (one block) x 1,440 samples at 5 min
    python bench/bench_profile_pass.py --series 2000 --rounds 9

"composed": robust_baseline, combined._widened, cusum_sides_of_three and combined._combine (the recent level's
six arrays and the six CUSUM sides written and read again); "one pass": combined._profile_pass's kernel.
"drift, numpy": drift._drift_evidence_numpy (its numpy steps, the reference); "drift_evidence": the function
as it is in this tree (with kernels.drift_pass: one pass; before it, four compiled passes). Outputs are
preallocated and touched before the timings, so the figures are the passes' own work; each figure is the
median CPU time (time.process_time) of `--rounds`.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import DAY_MS, DEFAULT_PARAMS  # noqa: E402
from analytics.detectors import combined, kernels  # noqa: E402
from analytics.detectors import drift as drift_mod  # noqa: E402
from analytics.detectors.base import typical_interval_ms  # noqa: E402
from analytics.detectors.level import robust_baseline  # noqa: E402
from analytics.detectors.seasonal import seasonal_baseline  # noqa: E402
from analytics.detectors.shift import cusum_sides_of_three  # noqa: E402
from bench.bench_analytics import make_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1_024)
    parser.add_argument("--samples", type=int, default=1_440)
    parser.add_argument("--step-minutes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    p = DEFAULT_PARAMS
    x, t = make_data(args.series, args.samples, step_minutes=args.step_minutes)
    step = typical_interval_ms(t)
    season = seasonal_baseline(x, t, p, None, step)
    has = np.isfinite(season.z)
    flat, drift = np.zeros(x.shape), np.zeros(x.shape)
    outs = [np.zeros(x.shape) for _ in range(4)] + [np.zeros(x.shape, dtype=np.int8)]
    into = combined.Scores({}, outs[3], outs[4], combined.Baseline(*outs[:3]))
    k, h = p.cusum_k, p.cusum_h
    widen = p.day_scale_floor > 0 and step > 0
    residual = np.ascontiguousarray(x - season.profile)

    def composed() -> None:
        recent = combined._widened(x, t, robust_baseline(x, p), has, p, step, None)
        sides = cusum_sides_of_three(recent.z, season.z, season.plain_z, p)
        combined._combine(season, recent, sides, flat, drift, into)

    def one_pass() -> None:
        kernels.profile_pass(x, season.z, season.plain_z, season.scale, season.expected, flat, drift, *outs,
                             combined._UNUSED, combined._UNUSED, combined._UNUSED, p.level_alpha, p.scale_alpha,
                             p.level_alpha * p.trend_beta, p.warmup, p.huber_clip, p.mad_to_sigma, p.rel_scale_floor,
                             p.abs_scale_floor, widen, min(1.0, 4.0 * step / DAY_MS), p.day_scale_floor, k, h,
                             p.cusum_rho_alpha, p.z_mid / h, p.cusum_cap * h, False)

    def drift_numpy() -> None:
        drift_mod._drift_evidence_numpy(residual, season.scale, p)

    def drift_compiled() -> None:
        drift_mod.drift_evidence(residual, season.scale, p)

    pairs: list[tuple[str, Callable[[], None], str, Callable[[], None]]] = [
        ("composed", composed, "one pass", one_pass),
        ("drift, numpy", drift_numpy, "drift_evidence", drift_compiled)]
    print(f"{args.series:,} series x {args.samples:,} samples every {args.step_minutes} min; "
          f"CPU seconds, median of {args.rounds}, in turns")
    for old_name, old, new_name, new in pairs:
        old(), new()  # compile / load, touch
        times: dict[str, list[float]] = {old_name: [], new_name: []}
        for _ in range(args.rounds):
            for name, fn in ((old_name, old), (new_name, new)):
                start = time.process_time()
                fn()
                times[name].append(time.process_time() - start)
        a, b = statistics.median(times[old_name]), statistics.median(times[new_name])
        print(f"{old_name:<18} {a:.4f}   {new_name:<18} {b:.4f}   ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
