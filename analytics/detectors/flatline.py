"""Stuck sensors: the surprise of a run of identical readings."""

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors import kernels
from analytics.detectors.base import as_matrix, calibrate


def flatline_nats(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Surprise (nats) of the current run of identical readings, given the series' past.

    p0 = (repeats + 1) / (steps + 2) counted before the run started; a run
    of r repeats scores r * ln(1 / p0). Missing readings neither extend nor
    break a run. Zero until `warmup` steps precede the run, while the run
    is shorter than `flatline_min_run`, and for a run at the lowest value
    the series had before it (idle, not stuck).
    """
    x = as_matrix(values)
    n_series, n_times = x.shape
    out = np.zeros(x.shape)
    if n_times == 0:
        return out
    # Only rows that repeat a reading at least flatline_min_run times can have
    # a run that long; most continuous series never repeat and cost one pass.
    candidates = np.flatnonzero(_repeat_count(x) >= params.flatline_min_run)
    if candidates.size == n_series:
        return _flatline_rows(x, params)
    if candidates.size:
        out[candidates] = _flatline_rows(x[candidates], params)
    return out


def _repeat_count(x: np.ndarray) -> np.ndarray:
    """Per row, how many readings equal the previous reading (missing ones skipped): an upper bound of any run.
    One compiled pass (kernels.repeat_counts); _repeat_count_numpy is its reference in the tests."""
    out = np.empty(x.shape[0], dtype=np.int64)
    kernels.repeat_counts(np.ascontiguousarray(x, dtype=np.float64), out)
    return out


def _repeat_count_numpy(x: np.ndarray) -> np.ndarray:
    """_repeat_count in whole-array numpy."""
    if not np.isnan(x).any():
        return (x[:, 1:] == x[:, :-1]).sum(axis=1)
    index = np.arange(x.shape[1])
    last_valid = np.maximum.accumulate(np.where(np.isnan(x), -1, index), axis=1)
    filled = np.take_along_axis(x, np.maximum(last_valid, 0), axis=1)  # forward-filled
    return (~np.isnan(x[:, 1:]) & (x[:, 1:] == filled[:, :-1])).sum(axis=1)


def _flatline_rows(x: np.ndarray, params: DetectorParams) -> np.ndarray:
    """flatline_nats of every row of x (S, T): the counts in one compiled pass (kernels.flatline_runs), the log
    in numpy as before, so the same bits as _flatline_rows_numpy (its reference in the tests)."""
    run, p_repeat, ready = np.empty(x.shape), np.empty(x.shape), np.empty(x.shape, dtype=bool)
    kernels.flatline_runs(np.ascontiguousarray(x, dtype=np.float64), float(params.warmup),
                          float(params.flatline_min_run), run, p_repeat, ready)
    return np.where(ready, run * -np.log(p_repeat), 0.0)


def _flatline_rows_numpy(x: np.ndarray, params: DetectorParams) -> np.ndarray:
    """_flatline_rows in whole-array numpy (cumulative sums, maxima and gathers)."""
    n_times = x.shape[1]
    index = np.arange(n_times)
    valid = ~np.isnan(x)
    last_valid = np.maximum.accumulate(np.where(valid, index, -1), axis=1)
    previous_valid = np.full(x.shape, -1)
    previous_valid[:, 1:] = last_valid[:, :-1]
    previous = np.take_along_axis(x, np.maximum(previous_valid, 0), axis=1)
    has_previous = valid & (previous_valid >= 0)
    repeat = has_previous & (x == previous)
    change = has_previous & (x != previous)
    repeats = np.cumsum(repeat, axis=1)
    steps = np.cumsum(repeat | change, axis=1)
    run_start = np.maximum.accumulate(np.where(change, index, 0), axis=1)
    repeats_before = np.take_along_axis(repeats, run_start, axis=1)
    steps_before = np.take_along_axis(steps, run_start, axis=1)
    run = repeats - repeats_before
    p_repeat = (repeats_before + 1.0) / (steps_before + 2.0)
    nats = run * -np.log(p_repeat)
    # A run at the lowest value the series has ever had (no flow, no cars at
    # night) is idle, not stuck: the two cannot be told apart from the data.
    floor = np.fmin.accumulate(x, axis=1)
    floor_before = np.take_along_axis(floor, np.maximum(run_start - 1, 0), axis=1)
    at_floor = np.take_along_axis(x, last_valid.clip(0), axis=1) <= floor_before
    ready = (steps_before >= params.warmup) & (run >= params.flatline_min_run) & ~at_floor
    return np.where(ready, nats, 0.0)


def flatline_evidence(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """flatline_nats in sigma units: `flatline_nats` nats is z_mid (a score of 0.5)."""
    return flatline_nats(values, params) * (params.z_mid / params.flatline_nats)


def flatline_score(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Stuck-sensor score in [0, 1]."""
    return calibrate(flatline_evidence(values, params), params)


