"""Does a speed change keep `city score`'s output byte-identical? The old code (a git ref) and this tree score
the same files; every output file must be the same bytes. Also times score_file on the largest file, the old
and the new code taking turns in one run (the machine is shared: the ratio counts, not the seconds).

    python3 bench/csv_identical.py --old main                  # corpus seeds 1 and 2 (all files), 1M-row file
    python3 bench/csv_identical.py --old a8df2fd --corpus 3 --rows 200000 --runs 3

The files: `--corpus` files of each seed of bench/csv_corpus.py (0: all of them; ISO and epoch timestamps,
regular and irregular, gaps, NaN), a few files written with semicolons and with quoted cells (the general
reader's path), and one file of `--rows` one-minute readings (bench/bench_csv_speed.py's). The timed runs
take turns, old and new, one child process each. The old code is `git archive`d into a temporary folder and
run there in a child process, so nothing of it is imported into this one. Exit status 1 if any output
differs.
"""

import argparse
import filecmp
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_csv_speed import write_file  # noqa: E402
from csv_corpus import make_corpus  # noqa: E402

# Run in a child with the code under test first on the path: score every file of a folder, then time one.
DRIVER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from analytics.csvscore import score_file
source, target, timed = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
target.mkdir(parents=True, exist_ok=True)
if timed == "-":  # score every file
    for path in sorted(source.glob("*.csv")):
        score_file(path, target / path.name)
else:  # warm up (numba's cache, imports) on the smallest file, then time one
    score_file(min(source.glob("*.csv"), key=lambda p: p.stat().st_size), target / "warm.csv")
    began = time.perf_counter()
    score_file(source / timed, target / "timed.csv")
    print(time.perf_counter() - began, flush=True)
"""


def write_files(folder: Path, per_seed: int, rows: int) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for seed in (1, 2):
        corpus = make_corpus(seed)
        picked = corpus if per_seed <= 0 else corpus[:: max(1, len(corpus) // per_seed)][:per_seed]
        for series in picked:
            text = series.csv_text()
            name = f"s{seed}_{series.name}.csv"
            (folder / name).write_text(text)
            names.append(name)
    for series in make_corpus(3)[::40]:  # the same rows through the semicolon and the quoted (general) readers
        text = series.csv_text()
        (folder / f"semicolon_{series.name}.csv").write_text(text.replace(",", ";"))
        quoted = "\n".join(f'"{line}"'.replace(",", '","') for line in text.splitlines()) + "\n"
        (folder / f"quoted_{series.name}.csv").write_text(quoted)
        names += [f"semicolon_{series.name}.csv", f"quoted_{series.name}.csv"]
    write_file(folder / "big.csv", rows)
    names.append("big.csv")
    return names


def run(code: Path, source: Path, target: Path, timed: str) -> str:
    return subprocess.run([sys.executable, "-c", DRIVER, str(code), str(source), str(target), timed],
                          stdout=subprocess.PIPE, text=True, check=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="main", help="git ref of the code to compare with")
    parser.add_argument("--corpus", type=int, default=0, help="files of each corpus seed (0: all)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of score_file on the big file, each side")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", args.old], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="csv-identical-") as temp:
        folder = Path(temp)
        old_code = folder / "old"
        old_code.mkdir()
        archive = subprocess.run(["git", "archive", args.old], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
        names = write_files(folder / "in", args.corpus, args.rows)
        sides = {"old": old_code, "new": ROOT}
        for side, code in sides.items():
            run(code, folder / "in", folder / side, "-")
        # The timed runs take turns (old, new, old, new, ...), one child each, so load changes hit both.
        seconds: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.runs):
            for side, code in sides.items():
                seconds[side].append(float(run(code, folder / "in", folder / f"{side}_timed", "big.csv")))
        differ = [name for name in names if not filecmp.cmp(folder / "old" / name, folder / "new" / name,
                                                            shallow=False)]
    print(f"{len(names)} files scored by {args.old} ({commit}) and by this tree: "
          f"{len(names) - len(differ)} identical, {len(differ)} differ")
    for name in differ:
        print(f"  DIFFERS: {name}")
    old, new = statistics.median(seconds["old"]), statistics.median(seconds["new"])
    print(f"score_file on {args.rows:,} rows, median of {args.runs}: old {old:.3f} s ({args.rows / old:,.0f} rows/s),"
          f" new {new:.3f} s ({args.rows / new:,.0f} rows/s), new/old {new / old:.2f}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
