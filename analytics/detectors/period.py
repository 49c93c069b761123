"""A series' own cycle, found from its first rows: a period of its own beside the day and the week.

The daily and weekly profiles (detectors.seasonal) know two periods. A machine's duty cycle, a tide, a
batch job every 40 minutes, or a file whose times are its row numbers (1, 2, 3, ... read as seconds) has
another one, and without a profile of that period its readings are judged against a slow level whose spread is
the whole swing of the cycle: a spike of many noise sigmas at the top of a cycle is inside it. `city score` finds
such a period from a file's learning rows only (they are scored 0), so every later row is still judged by the rows
before it.
"""

import math

import numpy as np


def autocorrelation(values: np.ndarray) -> np.ndarray:
    """The autocorrelation of values at every lag 0..n-1 over the pairs where both are known (NaN where none)."""
    x = np.asarray(values, dtype=np.float64)
    known = np.isfinite(x)
    n = x.size
    if known.sum() < 2:
        return np.full(n, np.nan)
    centred = np.where(known, x - x[known].mean(), 0.0)
    size = 1 << int(2 * n - 1).bit_length()  # zero-padded: the linear, not the circular correlation
    sums, pairs = (np.fft.irfft(np.abs(np.fft.rfft(a, size)) ** 2, size)[:n] for a in (centred, known.astype(float)))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_product = np.where(pairs > 0.5, sums / np.maximum(pairs, 1.0), np.nan)
    return mean_product / mean_product[0] if mean_product[0] > 0 else np.full(n, np.nan)


def found_period(values: np.ndarray, strength: float, repeats: int = 4) -> float:
    """The period in rows of the values' strongest cycle (a fraction of a row where its multiples say so), 0 if
    there is none.

    A cycle is the first peak of the autocorrelation after it first falls below 0 that is nearly (9/10) as high as
    the highest there, at least `strength` high, seen `repeats` times in the values (the lag at most a
    `repeats`-th of them), and repeating: the autocorrelation at twice the lag is at least half of `strength`. A
    trend or a random walk (the autocorrelation falls slowly and never peaks high again) and noise (no peak at
    all) give 0. Missing values are left out of the pairs. The period is then read again at its multiples within the
    first half of the values (each peak divided by its multiple), so an error of a row is not carried over cycles."""
    x = np.asarray(values, dtype=np.float64)
    if strength <= 0 or np.isfinite(x).sum() < 4 * repeats:
        return 0.0
    acf = np.nan_to_num(autocorrelation(x), nan=-1.0)
    most = x.size // repeats
    below = np.flatnonzero(acf[1:most] < 0)
    if not below.size or below[0] + 3 >= most:
        return 0.0
    start = int(below[0]) + 1
    window = acf[start:most]
    peaks = np.flatnonzero((window[1:-1] >= window[:-2]) & (window[1:-1] >= window[2:])
                           & (window[1:-1] >= 0.9 * window.max())) + 1
    if not peaks.size:
        return 0.0
    lag = start + int(peaks[0])
    if acf[lag] < strength or (2 * lag < x.size and acf[2 * lag] < strength / 2):
        return 0.0
    # Read again at twice, four times, ... the lag, within the error carried so far (half a row over the multiple):
    # the peak stays the same cycle's, and the period is known to a fraction of a row.
    period, error, multiple = float(lag), 0.5, 2
    while multiple * period < x.size // 2:
        centre = int(round(multiple * period))
        width = max(1, math.ceil(multiple * error))
        near = slice(max(centre - width, 1), min(centre + width + 1, x.size))
        period, error = (near.start + int(np.argmax(acf[near]))) / multiple, 0.5 / multiple
        multiple *= 2
    return period
