"""Rows per second of `city score` end to end, beside pandas doing the same file work, in one run.

    python3 bench/bench_csv_speed.py                    # 1,000,000 rows of one-minute readings, 3 runs
    python3 bench/bench_csv_speed.py --rows 200000 --runs 5
    python3 bench/bench_csv_speed.py --shell main --runs 5   # `city score` from a shell: this tree and main in turns
    python3 bench/bench_csv_speed.py --corpus 1 --runs 3     # the labelled corpus' 156 files instead of one
    python3 bench/bench_csv_speed.py --shifts --no-general   # a file whose incidents cover most rows

One file of `--rows` one-minute readings (a daily cycle plus noise, ISO 8601
timestamps, the shape of most exported sensor files) is written to a
temporary folder. Each method runs `--runs` times; the median wall time and
rows/s are printed, with the ratio to the pandas baseline:

- `city score` end to end (csvscore.score_file: read, parse, all detectors,
  the row surprise, the incident columns, write), and its parts: parsing
  (read_table: the compiled reader, analytics/csvfast.py, since a325dce; the plain whole-text reader
  before), scoring (score_rows), writing
  (write_scored); and the general reader (csv module and parse_time row by
  row, what every file took before the plain reader) for the parse alone;
- `city score` as the command runs it: with glibc keeping freed memory for reuse
  (analytics.alloc.keep_freed_memory, set last as it lasts for the process; glibc only);
- pandas' best form of the same file work: read_csv (its C engine), the
  timestamps parsed with to_datetime(format="ISO8601"), one rolling z-score
  (a 60-row window: far less than the detectors do), to_csv of the rows plus
  the score. It is the floor of the I/O, not a detector.

`--corpus SEED` runs the same end to end and pandas over every file of the labelled corpus (bench/csv_corpus.py:
156 files, 1.43 M rows at seed 1, every family and anomaly type, incidents open on a third of the rows), one
file at a time: the one clean daily cycle above has almost no incident, and the incident columns were once nearly
all of the time on real-looking files.

`--shell REF` times what a user timing the command from a shell sees: the console script `city score in.csv -o
out.csv` in a fresh process a run (the interpreter's start, the imports, numba's loads of its cached kernels, the
work, the exit), this tree and REF (`git archive`d into a temporary folder, as bench/csv_identical.py does) taking
turns, each with its own code first on PYTHONPATH. Each tree runs once untimed first (numba compiles its cache once
per source; Python writes its .pyc, as an installed package has them). Two files: `--rows` rows and one of
`--small-rows` (three days of one-minute readings: every kernel runs, the work is small), so the start is told from
the work. Printed: median wall and child CPU seconds of each, and the ratio of this tree to REF. Outputs must match.

The machine is shared: compare the ratios in one run, not the seconds across runs. Each line also gives the
median process time (`cpu s`: this process's CPU seconds, file writes' kernel time included; other work on the
machine still slows it through the shared caches and memory) and its rows/s (`rows/s cpu`).
"""

import argparse
import filecmp
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics import alloc, csvscore  # noqa: E402


def write_file(path: Path, rows: int, seed: int = 0, shifts: bool = False) -> None:
    rng = np.random.default_rng(seed)
    seconds = 1_735_689_600 + 60 * np.arange(rows)
    values = 15 * np.sin(2 * np.pi * np.arange(rows) / 1440) + rng.normal(0, 1, rows)
    if shifts:  # the level moves by 10 sigmas and back every 700 rows: incidents held on ~60 % of the rows
        values += 10 * ((np.arange(rows) // 700) % 2)
    values[rng.random(rows) < 0.001] = np.nan  # a few missing readings
    stamps = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    cells = ["" if np.isnan(v) else f"{v:.4f}" for v in values.tolist()]
    path.write_text("timestamp,value\n" + "".join(f"{s},{c}\n" for s, c in zip(stamps.tolist(), cells, strict=True)))


def pandas_same_work(source: Path, target: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(source, engine="c")
    stamps = frame["timestamp"]
    # The labelled corpus has files of epoch seconds beside ISO ones.
    numeric = pd.api.types.is_numeric_dtype(stamps)
    times = pd.to_datetime(stamps, unit="s") if numeric else pd.to_datetime(stamps, format="ISO8601")
    value = frame["value"]
    rolling = value.rolling(60, min_periods=10)
    frame["anomaly_score"] = ((value - rolling.mean().shift()) / rolling.std().shift()).abs().round(6)
    frame["t_ms"] = times.astype("int64") // 1_000_000
    frame.drop(columns="t_ms").to_csv(target, index=False)


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median wall seconds, median process seconds) of `runs` calls."""
    seconds, cpu = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        work()
        seconds.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return statistics.median(seconds), statistics.median(cpu)


ROOT = Path(__file__).resolve().parent.parent
# The console script's own lines (pyproject's `city = telemetry_cli.main:run`), for a venv without it installed.
CONSOLE = "import sys\nfrom telemetry_cli.main import run\nsys.argv[0] = 'city'\nsys.exit(run())\n"


def city_command() -> list[str]:
    """The installed console script `city` beside this interpreter, else the same lines run with -c."""
    script = Path(sys.executable).parent / "city"
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-c", CONSOLE]


def _child_env(code: Path) -> dict[str, str]:
    """This environment with `code` first on the path, Python allowed to write .pyc files (an installed package has
    them; this sandbox's PYTHONDONTWRITEBYTECODE would make every run compile the sources again)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(code)
    return env


def shell_run(code: Path, source: Path, target: Path) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one `city score source -o target` in a fresh process, `code` first on
    the path (_child_env)."""
    env = _child_env(code)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([*city_command(), "score", str(source), "-o", str(target), "--json"], cwd=code, env=env,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"city score failed in {code}: {done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def shell(old: str, rows: int, small_rows: int, runs: int) -> int:
    """`city score` from a shell, this tree and `old` in turns (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="csv-shell-") as folder:
        base = Path(folder)
        old_code = base / "old"
        old_code.mkdir()
        archive = subprocess.run(["git", "archive", old], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
        trees = {"new": ROOT, "old": old_code}
        files = {"big": base / "big.csv", "small": base / "small.csv"}
        write_file(files["big"], rows)
        write_file(files["small"], small_rows)
        for name, code in trees.items():  # untimed: numba's cache and the .pyc files, once per tree
            shell_run(code, files["small"], base / f"{name}-warm.csv")
        times: dict[tuple[str, str], list[tuple[float, float]]] = {(t, f): [] for t in trees for f in files}
        for turn in range(runs):
            for file in files:
                order = list(trees) if turn % 2 == 0 else list(trees)[::-1]
                for tree in order:
                    times[tree, file].append(shell_run(trees[tree], files[file], base / f"{tree}-{file}.csv"))
        differ = [file for file in files if not filecmp.cmp(base / f"new-{file}.csv", base / f"old-{file}.csv",
                                                             shallow=False)]
    print(f"`city score FILE -o OUT` from a shell, {runs} fresh processes each, this tree and {old} in turns; "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'file':<28}{'tree':<6}{'wall s':>8}{'cpu s':>8}{'rows/s wall':>13}{'wall runs':>40}")
    for file, count in (("big", rows), ("small", small_rows)):
        for tree in ("old", "new"):
            wall = [w for w, _ in times[tree, file]]
            cpu = [c for _, c in times[tree, file]]
            runs_text = " ".join(f"{w:.2f}" for w in wall)
            print(f"{f'{count:,} rows':<28}{tree:<6}{statistics.median(wall):>8.3f}{statistics.median(cpu):>8.3f}"
                  f"{count / statistics.median(wall):>13,.0f}{runs_text:>40}")
        new, old = (statistics.median(w for w, _ in times[tree, file]) for tree in ("new", "old"))
        ratio = new / old
        print(f"{'':<28}{'new/old wall':<14}{ratio:.2f}")
    if differ:
        print(f"OUTPUTS DIFFER: {differ}")
        return 1
    print("outputs: the same bytes")
    return 0


def corpus(seed: int, runs: int) -> int:
    """The labelled corpus' files (bench/csv_corpus.py), one at a time, `city score`'s work beside pandas'."""
    sys.path.insert(0, str(ROOT / "bench"))
    from csv_corpus import make_corpus, write_corpus

    series = make_corpus(seed, 12, 36)
    rows = sum(item.values.size for item in series)
    with tempfile.TemporaryDirectory(prefix="csv-corpus-speed-") as folder:
        base = Path(folder)
        write_corpus(series, base / "in")
        sources = [base / "in" / f"{item.name}.csv" for item in series]
        target = base / "out.csv"
        csvscore.score_file(sources[0], target)  # compiles the kernels before timing
        results = {
            "pandas: read_csv + to_datetime + rolling z + to_csv": timed(
                lambda: [pandas_same_work(source, target) for source in sources], runs),
            "city score end to end (score_file)": timed(
                lambda: [csvscore.score_file(source, target) for source in sources], runs),
        }
        # From a shell: every file in one command (--out-dir), against one command a file (the first 20 files).
        few = sources[:20]
        few_rows = sum(item.values.size for item in series[:20])
        command = [*city_command(), "score"]
        one_command = _shell_seconds([[*command, *map(str, sources), "--out-dir", str(base / "scored"), "--json"]],
                                     runs)
        one_a_file = _shell_seconds([[*command, str(source), "-o", str(target), "--json"] for source in few], runs)
    print(f"the labelled corpus, seed {seed}: {len(sources)} files, {rows:,} rows (every anomaly type and family, a "
          f"fifth irregularly sampled), one file at a time in this process, median of {runs} runs")
    _print_results(results, rows)
    print(f"from a shell (fresh processes, wall seconds, median of {runs}):")
    print(f"  `city score` of all {len(sources)} files in one command (--out-dir) {one_command:>8.2f} s "
          f"{rows / one_command:>12,.0f} rows/s")
    print(f"  `city score` once a file, the first {len(few)} files ({few_rows:,} rows) {one_a_file:>8.2f} s "
          f"{few_rows / one_a_file:>12,.0f} rows/s")
    return 0


def _shell_seconds(commands: list[list[str]], runs: int) -> float:
    """Median wall seconds of running `commands` one after the other, `runs` times."""
    env = _child_env(ROOT)
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        for command in commands:
            subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=True, timeout=600)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def _print_results(results: dict[str, tuple[float, float]], rows: int) -> None:
    baseline = results["pandas: read_csv + to_datetime + rolling z + to_csv"][0]
    print(f"{'method':<52}{'seconds':>9}{'rows/s':>13}{'vs pandas':>11}{'cpu s':>8}{'rows/s cpu':>13}")
    for name, (seconds, cpu) in results.items():
        print(f"{name:<52}{seconds:>9.3f}{rows / seconds:>13,.0f}{seconds / baseline:>10.2f}x"
              f"{cpu:>8.3f}{rows / cpu:>13,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-general", action="store_true", help="skip the row-by-row reader (slow)")
    parser.add_argument("--shell", metavar="REF", help="time the console command from a shell, this tree and REF")
    parser.add_argument("--small-rows", type=int, default=3 * 1440, help="--shell's small file")
    parser.add_argument("--corpus", type=int, metavar="SEED", help="the labelled corpus of this seed instead")
    parser.add_argument("--shifts", action="store_true",
                        help="the file's level shifts every 700 rows (incidents on most rows: the writer's worst case)")
    args = parser.parse_args(argv)
    if args.shell:
        return shell(args.shell, args.rows, args.small_rows, args.runs)
    if args.corpus is not None:
        return corpus(args.corpus, args.runs)
    with tempfile.TemporaryDirectory(prefix="csv-speed-") as folder:
        source, target = Path(folder) / "in.csv", Path(folder) / "out.csv"
        write_file(source, args.rows, shifts=args.shifts)
        text = source.read_text(encoding="utf-8-sig")
        table = csvscore.read_table(text)
        scores = csvscore.score_rows(table)  # also compiles the kernels before timing
        dialect = csvscore._dialect(text[:8192])
        results = {
            "pandas: read_csv + to_datetime + rolling z + to_csv": timed(lambda: pandas_same_work(source, target),
                                                                         args.runs),
            "city score end to end (score_file)": timed(lambda: csvscore.score_file(source, target), args.runs),
            "  parse (read_table)": timed(lambda: csvscore.read_table(text), args.runs),
            "  score (score_rows, all detectors)": timed(lambda: csvscore.score_rows(table), args.runs),
            "  write (write_scored)": timed(lambda: csvscore.write_scored(table, scores, io.StringIO()), args.runs),
        }
        if not args.no_general:
            results["  parse, general reader (csv module, row by row)"] = timed(
                lambda: csvscore._read_general(text, dialect), 1)
        # Last: `city score` keeps freed memory for reuse (alloc.keep_freed_memory), for the rest of the process.
        if alloc.keep_freed_memory():
            results["city score end to end, freed memory kept (as the command)"] = timed(
                lambda: csvscore.score_file(source, target), args.runs)
    shape = ", the level shifting every 700 rows" if args.shifts else ""
    print(f"{args.rows:,} rows, ISO timestamps{shape}, median of {args.runs} runs (the general reader: 1 run)")
    _print_results(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
