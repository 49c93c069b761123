"""Row-wise scoring of a streaming detector, as the field scores them, and the plain baseline to beat.

`row_wise` follows the Numenta Anomaly Benchmark's scoring (Lavin and
Ahmad, "Evaluating real-time anomaly detection algorithms: the Numenta
Anomaly Benchmark", ICMLA 2015), standard profile:

- every row scoring at or above the threshold is a detection;
- inside a labelled window only the earliest detection counts, worth
  A_tp * sigma(y), y = -(rows from it to the window's end) / window length,
  in [-1, 0): the window's first row earns ~0.99, later rows less; a window
  without detection costs A_fn;
- every detection outside the windows is a false positive, costing
  A_fp * sigma(y), y the distance past the previous window's end in its
  lengths (right after a window it costs little, far from it a full A_fp;
  before the first window a full A_fp);
- the first `probation` share of each file's rows (15 %, as the benchmark)
  is a learning period: no detection there counts either way;
- sigma(y) = 2 / (1 + e^(5y)) - 1; the sum over all files is normalised to
  100 for a perfect detector and 0 for one that never fires; one threshold
  for the whole corpus (the best one is reported).

`windowed_gaussian` is the plain baseline of that benchmark: each row's z
against the mean and standard deviation of the previous `window` rows, its
two-sided normal tail as the score.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

A_TP, A_FP, A_FN = 1.0, 0.11, 1.0
PROBATION = 0.15


def _sigma(y: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 2.0 / (1.0 + np.exp(5.0 * np.asarray(y, dtype=np.float64))) - 1.0


@dataclass
class RowWise:
    """The normalised row-wise score at one threshold, and what it is made of."""

    threshold: float
    score: float  # 100: every window found at its first row, no false row; 0: never firing
    windows: int
    found: int
    false_rows: int


class _File:
    """One file's windows and, per row, what a false detection there costs (0 inside a window)."""

    def __init__(self, scores: np.ndarray, windows: Sequence[tuple[int, int]], probation: float) -> None:
        self.scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
        n = self.scores.size
        learning = int(probation * n)
        self.windows = [(max(0, s), min(n - 1, e)) for s, e in windows if s < n]
        cost = np.full(n, -A_FP)  # before any window: a full false positive
        inside = np.zeros(n, dtype=bool)
        for index, (start, end) in enumerate(self.windows):
            inside[start:end + 1] = True
            stop = self.windows[index + 1][0] if index + 1 < len(self.windows) else n
            length = end - start + 1
            after = np.arange(end + 1, stop)
            cost[end + 1:stop] = A_FP * _sigma((after - end) / length)
        cost[inside] = 0.0
        inside[:learning] = True  # neither a false positive nor a window's detection
        self.scores = self.scores.copy()
        self.scores[:learning] = 0.0
        self.false_cost = cost
        self.outside = ~inside
        self.peaks = [np.maximum.accumulate(self.scores[s:e + 1]) for s, e in self.windows]
        order = np.argsort(-self.scores[self.outside], kind="stable")
        self.outside_sorted = self.scores[self.outside][order]
        self.cost_cumsum = np.concatenate(([0.0], np.cumsum(cost[self.outside][order])))

    def raw(self, threshold: float) -> tuple[float, int, int]:
        """(raw score, windows found, false rows) at a threshold."""
        total, found = 0.0, 0
        for (start, end), peak in zip(self.windows, self.peaks, strict=True):
            first = int(np.searchsorted(peak, threshold, side="left"))
            if first < peak.size:
                found += 1
                length = end - start + 1
                total += A_TP * float(_sigma(-(length - first) / length))
            else:
                total -= A_FN
        # Outside rows sorted by score, descending: those >= threshold are a prefix.
        false_rows = int(np.searchsorted(-self.outside_sorted, -threshold, side="right"))
        total += float(self.cost_cumsum[false_rows])
        return total, found, false_rows


def row_wise(files: Iterable[tuple[np.ndarray, Sequence[tuple[int, int]]]],
             thresholds: Iterable[float], probation: float = PROBATION) -> list[RowWise]:
    """The normalised row-wise score of (scores, windows) files at each threshold (windows: (first, last) rows)."""
    prepared = [_File(scores, windows, probation) for scores, windows in files]
    windows = sum(len(f.windows) for f in prepared)
    perfect = windows * A_TP * float(_sigma(-1.0))
    null = -windows * A_FN
    out = []
    for threshold in thresholds:
        parts = [f.raw(threshold) for f in prepared]
        raw = sum(p[0] for p in parts)
        score = 100.0 * (raw - null) / (perfect - null) if windows else 0.0
        out.append(RowWise(float(threshold), score, windows, sum(p[1] for p in parts), sum(p[2] for p in parts)))
    return out


def best_row_wise(files: Sequence[tuple[np.ndarray, Sequence[tuple[int, int]]]],
                  thresholds: Iterable[float] | None = None, probation: float = PROBATION) -> RowWise:
    """row_wise at the best single threshold for the whole corpus.

    Without `thresholds`, the candidates are the pooled scores' quantiles
    (every detector gets a grid as fine as its own score distribution, so a
    saturating score is not handicapped by a fixed grid) plus 0.05..0.99.
    """
    if thresholds is None:
        thresholds = candidate_thresholds([scores for scores, _ in files])
    return max(row_wise(files, thresholds, probation), key=lambda r: r.score)


def candidate_thresholds(scores: Sequence[np.ndarray]) -> list[float]:
    """Thresholds from the pooled scores: quantiles 1 - 10^-k for k in 0.3..5.5, and 0.05..0.99 in steps of 0.01."""
    pooled = np.concatenate([np.nan_to_num(np.asarray(s, dtype=np.float64)) for s in scores]) if scores else np.zeros(1)
    levels = 1.0 - 10.0 ** -np.linspace(0.3, 5.5, 80)
    quantiles = np.quantile(pooled, levels) if pooled.size else np.zeros(0)
    grid = np.round(0.05 + 0.01 * np.arange(95), 2)
    values = np.unique(np.concatenate((quantiles, grid)))
    return [float(v) for v in values if v > 0]


def windowed_gaussian(values: np.ndarray, window: int = 6400, min_rows: int = 10) -> np.ndarray:
    """Each row's two-sided normal tail score erf(|z| / sqrt 2) against the previous `window` rows' mean and sd.

    Causal (row t sees rows t - window .. t - 1); NaN values are skipped
    (they score 0 and do not enter the window); 0 until `min_rows` rows.
    """
    x = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(x)
    filled = np.where(valid, x, 0.0)
    count = np.concatenate(([0], np.cumsum(valid)))
    total = np.concatenate(([0.0], np.cumsum(filled)))
    squares = np.concatenate(([0.0], np.cumsum(filled * filled)))
    index = np.arange(x.size)
    lo = np.maximum(index - window, 0)
    n = count[index] - count[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total[index] - total[lo]) / n
        var = (squares[index] - squares[lo]) / n - mean * mean
        z = np.abs(x - mean) / np.sqrt(np.maximum(var, 1e-12 * np.maximum(mean * mean, 1.0)))
    from scipy.special import erf

    score = erf(z / math.sqrt(2.0))
    return np.where(valid & (n >= min_rows), np.nan_to_num(score), 0.0)
