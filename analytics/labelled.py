"""How well the CSV scorer finds the anomalies a user has labelled in their own data.

`city score-eval IN.csv [IN2.csv ...]` scores each file exactly as `city
score` does (analytics.csvscore: same parser, same parameters, causal) and
compares the scores with labelled windows, given either as a 0/1 label column
in the files (a window is a run of rows labelled 1) or as a windows CSV of
`file,start,end` rows (timestamps, both ends included).

At a score threshold:

- a window is *found* if a row scores at or above the threshold inside it or
  within `tolerance` rows after its last row (an alarm a reading or two late
  is still about that window);
- a *false alarm episode* is a run of consecutive alarmed rows none of which
  is inside a window or its tolerance: an alarm that lasts 50 rows is one
  false alarm, as an operator would see it;
- precision = found / (found + false episodes), recall = found / windows,
  F1 their harmonic mean (as `city evaluate` counts them for the simulator);
- delay: rows from a found window's first row to its first alarmed row.

The threshold sweep repeats this for thresholds 0.05 to 0.999 and names the
one with the best F1 over all files, so a utility can see what threshold its
own history supports before trusting the detectors.

Beside F1, the row-wise score of analytics.rowwise (the Numenta benchmark's:
every row over the threshold a detection, the earliest in a window earns the
most, every false row costs, one threshold for all files, the best one), of
`city score` and of a plain windowed Gaussian on the same readings.
"""

import csv
import io
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics import csvscore
from analytics.csvscore import CsvError, Table, parse_time, read_table
from analytics.rowwise import RowWise, best_row_wise, windowed_gaussian
from telemetry_shared.files import FileTooLarge, read_bounded_text

# 0.05 .. 0.99, then 0.995 and 0.999: on a series whose normal readings often score near 1 the best
# threshold sits at the top, and the last two steps show whether it keeps improving there.
SWEEP = tuple(round(0.05 + 0.01 * i, 2) for i in range(95)) + (0.995, 0.999)
MAX_WINDOW_BYTES = 64 * 1024 * 1024
MAX_FILES = 10_000


class LabelError(ValueError):
    """The labels cannot be used; the message names the file, the line and why."""


@dataclass
class Scored:
    """One file: its scores (file order) and labelled windows as row ranges (end included)."""

    name: str
    scores: np.ndarray
    windows: list[tuple[int, int]]
    values: np.ndarray | None = None  # the readings, for the windowed Gaussian baseline
    learning: np.ndarray | None = None  # the rows of the scorer's learning period (score 0: nothing judged yet)


@dataclass
class Metrics:
    """Detection at one threshold, for one file or summed over many."""

    rows: int = 0
    windows: int = 0
    found: int = 0
    false_episodes: int = 0
    rows_outside: int = 0  # rows outside every window and its tolerance: where a false alarm can happen
    learning_windows: int = 0  # windows starting in the scorer's learning period: missed by design, counted
    delays: list[int] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        flagged = self.found + self.false_episodes
        return self.found / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        return self.found / self.windows if self.windows else None

    @property
    def f1(self) -> float | None:
        if not self.windows:
            return None
        p, r = self.precision or 0.0, self.recall or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def median_delay(self) -> float | None:
        return float(statistics.median(self.delays)) if self.delays else None

    @property
    def false_per_10k(self) -> float | None:
        return 1e4 * self.false_episodes / self.rows_outside if self.rows_outside else None

    def add(self, other: "Metrics") -> None:
        self.rows += other.rows
        self.windows += other.windows
        self.found += other.found
        self.false_episodes += other.false_episodes
        self.rows_outside += other.rows_outside
        self.learning_windows += other.learning_windows
        self.delays += other.delays

    def as_dict(self) -> dict:
        def rounded(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"rows": self.rows, "windows": self.windows, "found": self.found,
                "false_episodes": self.false_episodes, "precision": rounded(self.precision),
                "recall": rounded(self.recall), "f1": rounded(self.f1), "median_delay_rows": self.median_delay,
                "false_per_10k_rows": rounded(self.false_per_10k), "learning_windows": self.learning_windows}


# ---------------------------------------------------------------- reading


def read_scored_table(path: Path) -> tuple[Table, csvscore.RowScores]:
    """Read and score one CSV exactly as `city score` does (csvscore's limits and parser). Raises CsvError."""
    text = csvscore.read_source(path)
    try:
        table = read_table(text)
    except CsvError as exc:
        raise CsvError(f"{path}: {exc}") from None
    return table, csvscore.score_rows(table)


_BOOLEANS = {"true": 1.0, "false": 0.0}


# Names the public labelled collections give their 0/1 column (Yahoo S5: is_anomaly in A1-A2, anomaly in
# A3-A4; others: label, outlier), in the order a hint names them.
LABEL_NAMES = ("is_anomaly", "anomaly", "label", "labels", "is_anomalous", "anomalous", "outlier", "is_outlier")


def label_windows(table: Table, column: str) -> list[tuple[int, int]]:
    """Runs of rows labelled 1 in `column` (named in the header) as (first, last) rows. Raises LabelError.

    A label is 0 or 1 (0.0 and 1.0 too, and true or false in any case, as
    pandas writes a boolean column); anything else, an empty cell included,
    is refused with its line: a guess about what "2" or "" means would
    change the answer silently.
    """
    if table.header is None:
        raise LabelError(f"the file has no header, so it has no column named {column!r}")
    names = [cell.strip().strip('"').lower() for cell in table.header]
    wanted = column.strip().lower()
    if wanted not in names:
        likely = [table.header[names.index(name)].strip().strip('"') for name in LABEL_NAMES if name in names]
        hint = f"; try --label-column {likely[0]}" if likely else ""
        raise LabelError(f"no label column {column!r} in header {table.header!r:.200}{hint}")
    index = names.index(wanted)
    if index == table.value_column:
        raise LabelError(f"the label column {column!r} is the column being scored")
    if index == table.time_column:
        raise LabelError(f"the label column {column!r} is the timestamp column")
    labels = np.empty(len(table.rows), dtype=bool)
    cells = table.rows.column(index) if hasattr(table.rows, "column") else [row[index] for row in table.rows]
    for row_number, raw in enumerate(cells):
        cell = raw.strip()
        try:
            number = float(cell)
        except ValueError:
            number = _BOOLEANS.get(cell.lower(), math.nan)
        if number not in (0.0, 1.0):
            raise LabelError(f"line {row_number + 2}: label {cell[:40]!r} is not 0 or 1 (nor true or false)")
        labels[row_number] = number == 1.0
    return runs(labels)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in a 1-D boolean array."""
    padded = np.concatenate(([False], np.asarray(flags, dtype=bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(start), int(stop) - 1) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def read_windows_csv(path: Path) -> dict[str, list[tuple[int, int, int]]]:
    """A windows CSV (header file,start,end; timestamps) as {file: [(start_ms, end_ms, line)]}. Raises LabelError."""
    try:
        text = read_bounded_text(path, MAX_WINDOW_BYTES, "utf-8-sig")
    except FileTooLarge as exc:
        raise LabelError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise LabelError(f"cannot read {path}: {exc.strerror}") from exc
    if "\x00" in text:
        raise LabelError(f"{path} contains NUL bytes: not a text CSV")
    reader = csv.reader(io.StringIO(text, newline=""))
    windows: dict[str, list[tuple[int, int, int]]] = {}
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise LabelError(f"{path} is empty: expected a header file,start,end and one row per window")
        names = [cell.strip().lower() for cell in header]
        if not {"file", "start", "end"} <= set(names):
            raise LabelError(f"{path}: the header must name the columns file, start and end, got {header!r:.200}")
        where = {name: names.index(name) for name in ("file", "start", "end")}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise LabelError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
            try:
                start = parse_time(row[where["start"]])
                end = parse_time(row[where["end"]])
            except (ValueError, OverflowError, OSError) as exc:
                raise LabelError(f"{path} line {line}: {exc}") from None
            if end < start:
                raise LabelError(f"{path} line {line}: the window ends before it starts")
            windows.setdefault(row[where["file"]].strip(), []).append((start, end, line))
    except csv.Error as exc:
        raise LabelError(f"{path} line {reader.line_num}: {exc}") from exc
    return windows


def rows_of_windows(times_ms: np.ndarray, spans: Iterable[tuple[int, int, int]], name: str,
                    ) -> list[tuple[int, int]]:
    """Timestamp windows as (first, last) rows of a file. Raises LabelError for a window holding no row.

    Rows out of time order are placed by the latest time seen so far, as
    the scorer does. A window that reaches past either end of the file is
    cut to the file; one wholly outside it, or in a gap with no rows, is an
    error (most likely the wrong file or a time zone mix-up).
    """
    monotone = np.maximum.accumulate(times_ms) if times_ms.size else times_ms
    out = []
    for start, end, line in spans:
        first = int(np.searchsorted(monotone, start, side="left"))
        last = int(np.searchsorted(monotone, end, side="right")) - 1
        if first > last:
            if not times_ms.size:
                raise LabelError(f"windows line {line}: {name} has no rows")
            raise LabelError(f"windows line {line}: no row of {name} falls inside the window "
                             f"(the file spans {_iso(monotone[0])} to {_iso(monotone[-1])})")
        out.append((first, last))
    return merge_windows(out)


def _iso(t_ms: int) -> str:
    return np.datetime64(int(t_ms), "ms").astype(str).replace("T", " ")


def merge_windows(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Row windows (end included) sorted, with overlapping or touching ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def load(paths: list[Path], label_column: str = "label", windows_csv: Path | None = None,
         on_file: Callable[[Path], None] | None = None) -> tuple[list[Scored], int]:
    """Score every file and attach its windows. Returns (files, windows naming a file not given).

    Raises CsvError (a file cannot be scored) or LabelError (its labels
    cannot be used); the message names the file.
    """
    if len(paths) > MAX_FILES:
        raise LabelError(f"{len(paths):,} files: at most {MAX_FILES:,} in one run")
    spans = read_windows_csv(windows_csv) if windows_csv is not None else None
    used: set[str] = set()
    scored = []
    for path in paths:
        table, rows = read_scored_table(path)
        try:
            if spans is None:
                windows = label_windows(table, label_column)
            else:
                key = str(path) if str(path) in spans else path.name
                used.add(key)
                windows = rows_of_windows(table.times_ms, spans.get(key, []), path.name)
        except LabelError as exc:
            raise LabelError(f"{path}: {exc}") from None
        scored.append(Scored(str(path), rows.score, windows, table.values, rows.learning))
        if on_file is not None:
            on_file(path)
    unused = 0 if spans is None else sum(len(v) for k, v in spans.items() if k not in used)
    return scored, unused


# ---------------------------------------------------------------- metrics


def _near_windows(n_rows: int, windows: list[tuple[int, int]], tolerance: int) -> np.ndarray:
    """True on the rows of each window and the `tolerance` rows after it."""
    near = np.zeros(n_rows, dtype=bool)
    for start, end in windows:
        near[start:min(n_rows, end + tolerance + 1)] = True
    return near


def file_metrics(scores: np.ndarray, windows: list[tuple[int, int]], threshold: float,
                 tolerance: int = 5) -> Metrics:
    """Windows found, false alarm episodes and delays in one file at one threshold (see the module notes)."""
    return sweep_file(scores, windows, (threshold,), tolerance)[0]


def sweep_file(scores: np.ndarray, windows: list[tuple[int, int]], thresholds: Iterable[float],
               tolerance: int = 5) -> list[Metrics]:
    """file_metrics at each threshold, sharing the work that does not depend on it."""
    if tolerance < 0:
        raise ValueError("tolerance must be at least 0 rows")
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    near = _near_windows(n, windows, tolerance)
    # Per window, the running maximum of its scores: the first row reaching a
    # threshold is a binary search in it, for every threshold.
    peaks = [np.maximum.accumulate(scores[start:min(n, end + tolerance + 1)]) for start, end in windows]
    thresholds = list(thresholds)
    # Most rows score near 0: only rows above the lowest threshold can alarm.
    candidates = np.flatnonzero(scores >= min(thresholds)) if thresholds else np.empty(0, dtype=np.int64)
    out = []
    for threshold in thresholds:
        metrics = Metrics(rows=n, windows=len(windows), rows_outside=int(n - near.sum()))
        for peak in peaks:
            first = int(np.searchsorted(peak, threshold, side="left"))
            if first < peak.size:
                metrics.found += 1
                metrics.delays.append(first)
        alarmed = candidates[scores[candidates] >= threshold]
        if alarmed.size:
            episode = np.concatenate(([0], np.cumsum(np.diff(alarmed) > 1)))
            touched = np.bincount(episode, weights=near[alarmed], minlength=episode[-1] + 1)
            metrics.false_episodes = int((touched == 0).sum())
        out.append(metrics)
    return out


@dataclass
class Report:
    """Everything score-eval prints: per file and in total at the threshold, and the sweep."""

    threshold: float
    tolerance: int
    files: list[tuple[str, Metrics]]
    total: Metrics
    sweep: list[tuple[float, Metrics]]
    best_threshold: float | None
    unused_windows: int = 0
    # The row-wise score (analytics.rowwise) at its best threshold, of `city score` and of the windowed
    # Gaussian baseline on the same files (None without windows or without the readings).
    row_wise: RowWise | None = None
    baseline_row_wise: RowWise | None = None

    def as_dict(self) -> dict:
        best = next((m for t, m in self.sweep if t == self.best_threshold), None)
        return {
            "threshold": self.threshold,
            "tolerance_rows": self.tolerance,
            "files": [{"file": name, **m.as_dict()} for name, m in self.files],
            "total": self.total.as_dict(),
            "best": None if best is None else {"threshold": self.best_threshold, **best.as_dict()},
            "sweep": [{"threshold": t, "precision": _round(m.precision), "recall": _round(m.recall),
                       "f1": _round(m.f1), "false_episodes": m.false_episodes} for t, m in self.sweep],
            "unused_windows": self.unused_windows,
            "row_wise": _row_wise_dict(self.row_wise),
            "baseline_row_wise": _row_wise_dict(self.baseline_row_wise),
        }


def _row_wise_dict(r: RowWise | None) -> dict | None:
    return None if r is None else {"score": round(r.score, 2), "threshold": r.threshold, "windows": r.windows,
                                   "found": r.found, "false_rows": r.false_rows}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def evaluate(files: list[Scored], threshold: float = 0.5, tolerance: int = 5,
             thresholds: Iterable[float] = SWEEP) -> Report:
    """Per-file and total metrics at `threshold`, and the total over a sweep of thresholds.

    The best threshold maximises total F1; where several tie, the middle
    one of them (the farthest from both edges of the plateau). None when no
    file has a labelled window (there is nothing to find, only false alarms
    to count).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be in [0, 1]")
    grid = sorted(set(thresholds) | {threshold})
    per_file = []
    total = Metrics()
    totals = {t: Metrics() for t in grid}
    for item in files:
        results = sweep_file(item.scores, item.windows, grid, tolerance)
        learning = 0 if item.learning is None else sum(bool(item.learning[start]) for start, _ in item.windows)
        for t, m in zip(grid, results, strict=True):
            m.learning_windows = learning
            totals[t].add(m)
            if t == threshold:
                per_file.append((item.name, m))
                total.add(m)
    sweep = [(t, totals[t]) for t in grid]
    best = None
    if total.windows:
        top = max(m.f1 for _, m in sweep)
        tied = [t for t, m in sweep if m.f1 == top]
        best = tied[len(tied) // 2]
    report = Report(threshold, tolerance, per_file, total, sweep, best)
    if total.windows:
        report.row_wise = best_row_wise([(item.scores, item.windows) for item in files])
        if all(item.values is not None for item in files):
            report.baseline_row_wise = best_row_wise([(windowed_gaussian(item.values), item.windows)
                                                      for item in files])
    return report
