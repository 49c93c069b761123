"""Issue 13's row-score checks on a daily cycle, over many seeds (the tests hold a few of them).

    python3 bench/bench_row_checks.py               # 20 seeds
    python3 bench/bench_row_checks.py --seeds 50
    python3 bench/bench_row_checks.py --single      # also one spike per series

The series (the tests' own): ten days at five minutes, a daily cycle of amplitude 15 and noise
sd 1, scored by `city score` (csvscore.score_rows, CSV_PARAMS). Printed:

- single spikes or dips of 6 sigma (4 per seed, Monday to Thursday, with a
  daily profile): the share scoring >= 0.9 on that row, and the median;
  with --single also each of them alone in its own series (the same seeds
  and rows: what an outside tester who adds one spike sees; the four-spike
  series lets the earlier spikes teach the later ones' tail);
- level shifts of 5 sigma (one per seed, up or down): the share flagged
  (>= 0.9) on their first or second row;
- clean series: the largest p99 of the row scores over the seeds.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.csvscore import score_rows  # noqa: E402

# The same series as the tests' (tests/analytics/test_surprise.py), which hold a few of these seeds.
from tests.analytics.test_surprise import DAY, daily, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--single", action="store_true", help="also score each spike alone in its own series")
    args = parser.parse_args(argv)
    spikes, single, shifts, clean = [], [], [], []
    for seed in range(args.seeds):
        y = daily(100 + seed)
        rows = np.array([5 * DAY + 17, 6 * DAY + 120, 7 * DAY + 200, 8 * DAY + 40]) + seed
        signs = np.array([1, -1, 1, -1])
        if args.single:
            for row, sign in zip(rows, signs, strict=True):
                alone = daily(100 + seed)
                alone[row] += 6 * sign
                single.append(score_rows(table(alone)).score[row])
        y[rows] += 6 * signs
        spikes += list(score_rows(table(y)).score[rows])
        y = daily(200 + seed)
        at = 7 * DAY + 40 + 3 * seed
        y[at:] += 5 * (1 if seed % 2 else -1)
        score = score_rows(table(y)).score
        shifts.append(max(score[at], score[at + 1]))
        clean.append(np.percentile(score_rows(table(daily(300 + seed))).score, 99))
    spikes_a = np.array(spikes)
    print(f"6-sigma spikes/dips scoring >= 0.9 on their row: {np.mean(spikes_a >= 0.9):.2f} of {spikes_a.size} "
          f"(median score {np.median(spikes_a):.3f})")
    if args.single:
        single_a = np.array(single)
        print(f"  one per series: {np.mean(single_a >= 0.9):.2f} of {single_a.size} (median score "
              f"{np.median(single_a):.3f}, {int(np.sum(single_a == 0))} scoring 0)")
    print(f"5-sigma level shifts flagged (>= 0.9) on their first or second row: "
          f"{int(np.sum(np.array(shifts) >= 0.9))} of {len(shifts)}")
    print(f"clean series: largest p99 of the row scores {max(clean):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
