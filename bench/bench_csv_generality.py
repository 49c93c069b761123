"""How general is the CSV scorer? A labelled synthetic corpus through `city score-eval`'s path.

    python3 bench/bench_csv_generality.py --headline       # the tuned part and the held-out part only
    python3 bench/bench_csv_generality.py                  # and the per-type table of seed 1, and speed
    python3 bench/bench_csv_generality.py --tuned 1 --held-out 2 --per-anomaly 20 --clean 60 --threshold 0.5
    python3 bench/bench_csv_generality.py --headline --intervals 60   # the same corpus read hourly (slow meters)

The tuned part (seeds 1, 3, 4, 5 and 6) is the part of the corpus the
parameters are chosen on; the held-out part (seeds 2, 7, 8, 9 and 10) is
never used to choose anything. Each part is scored as one collection (one
threshold for all its files), with each seed's own best F1 beside it, so
the spread between seeds shows too. Both parts are printed in one run,
with, beside the window F1, the row-wise score of analytics.rowwise (the
Numenta benchmark's way: every row over the threshold a detection, the
earliest in a window earns the most, every false row costs, one threshold
for the whole corpus) for `city score` and for the plain windowed Gaussian
baseline on the same files.

The corpus (bench/csv_corpus.py) is written as CSVs to a temporary folder
and read back exactly as a user's files would be (analytics.labelled.load:
csvscore's parser and scorer). Printed:

- per anomaly type: windows found / labelled, false alarm episodes per
  10,000 rows outside the windows of those series, median delay in rows;
- per family on the clean series: false alarm episodes per 10,000 rows
  (there is nothing to find there);
- the total at the threshold and at the best threshold of a sweep;
- speed, side by side in one run: rows/s for parsing the CSVs, for the
  scorer alone, and for a plain numpy pass over the same values (a robust
  z against the whole file: one read, one write; the floor, no detector is
  cheaper). Medians over files are not used: rows/s is total rows over
  total seconds, the figure a user with many files meets.
"""

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from csv_corpus import ANOMALIES, FAMILIES, INTERVALS_MIN, VISIBLE_SIGMAS, make_corpus, write_corpus  # noqa: E402

from analytics.csvscore import read_table, score_rows, score_table  # noqa: E402
from analytics.labelled import Metrics, Scored, evaluate, label_windows, sweep_file  # noqa: E402
from analytics.rowwise import windowed_gaussian  # noqa: E402

GAUSSIAN_SWEEP = tuple(1 - 10.0 ** -k for k in np.linspace(0.3, 12, 80))


def headline(seeds: list[int], per_anomaly: int, clean: int, tolerance: int,
             intervals_min: tuple[int, ...] = INTERVALS_MIN) -> tuple[dict, str]:
    """Best-threshold F1 and best row-wise score of `city score` and of the windowed Gaussian on the files of
    these seeds as one collection, each seed's own best F1, and a line on the windows no detector can see
    (the anomaly changed no reading by VISIBLE_SIGMAS)."""
    ours, gauss, visible = [], [], []
    by_seed: dict[int, list[Scored]] = defaultdict(list)
    for seed in seeds:
        for series in make_corpus(seed, per_anomaly, clean, intervals_min):
            text = series.csv_text()
            table = read_table(text)
            windows = label_windows(table, "label")
            scored = score_rows(table)
            name = f"seed{seed}/{series.name}"
            ours.append(Scored(name, scored.score, windows, learning=scored.learning))
            by_seed[seed].append(ours[-1])
            gauss.append(Scored(name, windowed_gaussian(table.values), windows))
            if len(windows) != len(series.visibility):  # labels of two windows touching: cannot pair them
                raise RuntimeError(f"{name}: {len(windows)} label runs, {len(series.visibility)} windows")
            visible.append(Scored(name, scored.score, [w for w, v in zip(windows, series.visibility, strict=True)
                                                       if not v < VISIBLE_SIGMAS]))
    out = {}
    for name, files, grid in (("city score", ours, None), ("windowed Gaussian", gauss, GAUSSIAN_SWEEP)):
        report = evaluate(files, 0.5, tolerance) if grid is None else evaluate(files, 0.5, tolerance, grid)
        best = next(m for t, m in report.sweep if t == report.best_threshold)
        rows = report.row_wise  # best_row_wise of these files
        out[name] = (report.best_threshold, best, rows)
        if grid is None:
            ours_report = report
    report = ours_report
    hidden = report.total.windows - sum(len(f.windows) for f in visible)
    at_best = Metrics()
    for item in visible:
        at_best.add(sweep_file(item.scores, item.windows, (report.best_threshold or 0.5,), tolerance)[0])
    in_learning = report.total.learning_windows
    each = ", ".join(f"{seed} {_best_f1(files, tolerance):.3f}" for seed, files in by_seed.items())
    note = (f"  {hidden} of {report.total.windows} windows change no reading by {VISIBLE_SIGMAS:g} noise sigmas "
            f"(no detector can see them); without them, at {report.best_threshold}: F1 {at_best.f1:.3f} "
            f"(R {at_best.recall or 0:.2f}); {in_learning} windows start in a file's learning period"
            + (f"\n  each seed's own best F1: {each}" if len(by_seed) > 1 else ""))
    return out, note


def _best_f1(files: list[Scored], tolerance: int) -> float:
    report = evaluate(files, 0.5, tolerance)
    return next(m for t, m in report.sweep if t == report.best_threshold).f1 or 0.0


def seed_list(text: str) -> list[int]:
    """'1,3-6' -> [1, 3, 4, 5, 6]."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def print_headline(seeds: list[tuple[str, list[int]]], per_anomaly: int, clean: int, tolerance: int,
                   intervals_min: tuple[int, ...] = INTERVALS_MIN) -> None:
    print(f"{'part':<28}{'detector':<20}{'best F1':>8}{'at':>8}{'P':>6}{'R':>6}{'row-wise':>10}{'at':>9}"
          f"{'found':>9}{'false rows':>11}")
    notes = []
    for label, part in seeds:
        results, note = headline(part, per_anomaly, clean, tolerance, intervals_min)
        notes.append(f"{label}:{note}")
        for name, (threshold, best, rows) in results.items():
            print(f"{label:<28}{name:<20}{best.f1:>8.3f}{threshold:>8.3g}{best.precision or 0:>6.2f}"
                  f"{best.recall or 0:>6.2f}{rows.score:>10.1f}{rows.threshold:>9.4g}"
                  f"{f'{rows.found}/{rows.windows}':>9}{rows.false_rows:>11}")
    print("\n".join(notes))


def plain_pass(values: np.ndarray) -> np.ndarray:
    median = np.nanmedian(values)
    spread = np.nanmedian(np.abs(values - median)) or 1.0
    return np.abs(values - median) / spread


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def run(seed: int, per_anomaly: int, clean: int, threshold: float, tolerance: int, show_files: bool,
        intervals_min: tuple[int, ...] = INTERVALS_MIN) -> None:
    corpus = make_corpus(seed, per_anomaly, clean, intervals_min)
    meta = {s.name: s for s in corpus}
    parse_s = score_s = floor_s = 0.0
    files: list[Scored] = []
    with tempfile.TemporaryDirectory(prefix="csv-corpus-") as folder:
        write_corpus(corpus, Path(folder))
        for series in corpus:
            text = (Path(folder) / f"{series.name}.csv").read_text(encoding="utf-8-sig")
            began = time.perf_counter()
            table = read_table(text)
            parsed = time.perf_counter()
            scores = score_table(table)
            scored = time.perf_counter()
            plain_pass(table.values)
            floored = time.perf_counter()
            parse_s += parsed - began
            score_s += scored - parsed
            floor_s += floored - scored
            files.append(Scored(series.name, scores, label_windows(table, "label")))
    rows = sum(item.scores.size for item in files)
    report = evaluate(files, threshold, tolerance)
    best = report.best_threshold

    by_type: dict[str, Metrics] = defaultdict(Metrics)
    by_type_best: dict[str, Metrics] = defaultdict(Metrics)
    clean_by_family: dict[str, Metrics] = defaultdict(Metrics)
    per_file = []
    for item in files:
        series = meta[item.name]
        at, at_best = sweep_file(item.scores, item.windows, (threshold, best or threshold), tolerance)
        by_type[series.anomaly].add(at)
        by_type_best[series.anomaly].add(at_best)
        if series.anomaly == "clean":
            clean_by_family[series.family].add(at)
        per_file.append((item.name, series, at))

    print(f"corpus seed {seed}: {len(files)} files, {rows:,} rows; threshold {threshold:g}, "
          f"tolerance {tolerance} rows; best threshold of the sweep {best}")
    print()
    header = f"{'anomaly':<13}{'found':>9}{'recall':>8}{'precision':>10}{'false/10k':>11}{'delay':>8}" \
             f"   | at best {best}: {'found':>7}{'R':>6}{'P':>6}{'false/10k':>11}"
    print(header)
    print("-" * len(header))
    for kind in (*ANOMALIES, "clean"):
        m, mb = by_type[kind], by_type_best[kind]
        found = f"{m.found}/{m.windows}" if m.windows else "-"
        found_best = f"{mb.found}/{mb.windows}" if mb.windows else "-"
        # Precision of a type: its windows found against the false alarm episodes in the files of that type.
        print(f"{kind:<13}{found:>9}{_fmt(m.recall):>8}{_fmt(m.precision):>10}{_fmt(m.false_per_10k):>11}"
              f"{_fmt(m.median_delay, 0):>8}   | {'':>{len(str(best)) + 8}}{found_best:>7}{_fmt(mb.recall):>6}"
              f"{_fmt(mb.precision):>6}{_fmt(mb.false_per_10k):>11}")
    t, tb = report.total, next(m for th, m in report.sweep if th == best) if best is not None else report.total
    print(f"{'all':<13}{f'{t.found}/{t.windows}':>9}{_fmt(t.recall):>8}{_fmt(t.precision):>10}"
          f"{_fmt(t.false_per_10k):>11}{_fmt(t.median_delay, 0):>8}   | {'':>{len(str(best)) + 8}}"
          f"{f'{tb.found}/{tb.windows}':>7}{_fmt(tb.recall):>6}{_fmt(tb.precision):>6}{_fmt(tb.false_per_10k):>11}")
    print(f"total at {threshold:g}: P {_fmt(t.precision)} R {_fmt(t.recall)} F1 {_fmt(t.f1)} "
          f"({t.false_episodes} false episodes);  at best {best}: P {_fmt(tb.precision)} R {_fmt(tb.recall)} "
          f"F1 {_fmt(tb.f1)} ({tb.false_episodes} false episodes)")
    print()
    print(f"{'family':<15}{'clean rows':>11}{'false':>7}{'false/10k':>11}   anomalous: found   false/10k")
    anomalous_by_family: dict[str, Metrics] = defaultdict(Metrics)
    for _, series, m in per_file:
        if series.anomaly != "clean":
            anomalous_by_family[series.family].add(m)
    for family in FAMILIES:
        c, a = clean_by_family[family], anomalous_by_family[family]
        print(f"{family:<15}{c.rows:>11,}{c.false_episodes:>7}{_fmt(c.false_per_10k):>11}   "
              f"{f'{a.found}/{a.windows}':>17}{_fmt(a.false_per_10k):>12}")
    print()
    print(f"speed over {rows:,} rows (total rows / total seconds, one file at a time):")
    print(f"  parse CSV text (csvscore.read_table)     {rows / parse_s:>12,.0f} rows/s  {parse_s:7.2f} s")
    print(f"  score (csvscore.score_table, all detectors){rows / score_s:>10,.0f} rows/s  {score_s:7.2f} s  "
          f"{score_s / floor_s:5.1f}x the floor")
    print(f"  plain numpy pass (median/MAD z), floor   {rows / floor_s:>12,.0f} rows/s  {floor_s:7.2f} s")
    if show_files:
        print()
        for name, series, m in per_file:
            print(f"  {name:<34} {series.interval_min:>2} min {m.rows:>6} rows  found {m.found}/{m.windows}  "
                  f"false {m.false_episodes:>3}  delay {_fmt(m.median_delay, 0)}")


def _seeds(seeds: list[int] | tuple[int, ...]) -> str:
    return ",".join(map(str, seeds))


def _minutes(text: str) -> tuple[int, ...]:
    """'30,60' -> (30, 60): whole minutes from 1 to a day."""
    minutes = tuple(int(part) for part in text.split(","))
    if not all(1 <= m <= 1440 for m in minutes):
        raise argparse.ArgumentTypeError("each interval is 1 to 1440 minutes")
    return minutes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=seed_list, default=[1, 3, 4, 5, 6],
                        help="the seeds the parameters are chosen on, e.g. 1,3-6")
    parser.add_argument("--held-out", type=seed_list, default=[2, 7, 8, 9, 10],
                        help="the seeds never tuned on, e.g. 2,7-10")
    parser.add_argument("--seed", type=int, default=1, help="the seed of the per-type table")
    parser.add_argument("--per-anomaly", type=int, default=12)
    parser.add_argument("--clean", type=int, default=36)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--tolerance", type=int, default=5)
    parser.add_argument("--files", action="store_true", help="also print one line per file")
    parser.add_argument("--intervals", type=_minutes, default=INTERVALS_MIN, metavar="MINUTES",
                        help="each file read every one of these minutes, e.g. 30,60 for slow meters "
                             f"(default {_seeds(INTERVALS_MIN)})")
    parser.add_argument("--headline", action="store_true",
                        help="only the two parts side by side (half the time: no per-type table, no speed)")
    args = parser.parse_args(argv)
    print_headline([(f"tuned (seeds {_seeds(args.tuned)})", args.tuned),
                    (f"held out (seeds {_seeds(args.held_out)})", args.held_out)],
                   args.per_anomaly, args.clean, args.tolerance, args.intervals)
    if args.headline:
        return 0
    print()
    run(args.seed, args.per_anomaly, args.clean, args.threshold, args.tolerance, args.files, args.intervals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
