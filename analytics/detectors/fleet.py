"""Detectors across devices and nights: a meter against its district's peers, the minimum night flow."""

import warnings

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors.base import DetectorInputError, as_matrix, nanmedian_first_axis
from analytics.detectors.level import robust_baseline
from analytics.localtime import to_local, to_utc


def peer_residual(values: np.ndarray, groups: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Each series' relative departure from the median of its group (e.g. the meters of one district).

    (x - median) / |median| at each time.
    NaN where fewer than `peer_min_peers` series of the group have a reading.
    The loop is over groups (a handful of districts), not series.
    """
    x = as_matrix(values)
    labels = np.asarray(groups)
    if labels.shape != (x.shape[0],):
        raise DetectorInputError(f"groups must have one label per series ({x.shape[0]}), got {labels.shape}")
    out = np.full(x.shape, np.nan)
    for group in np.unique(labels):
        rows = labels == group
        if rows.sum() < params.peer_min_peers:
            continue
        block = x[rows]
        median = nanmedian_first_axis(block)
        enough = (~np.isnan(block)).sum(axis=0) >= params.peer_min_peers
        # Relative departure: meters of different sizes on the same curve
        # keep a constant ratio to their median, not a constant difference.
        with np.errstate(divide="ignore", invalid="ignore"):
            departure = (block - median) / np.maximum(np.abs(median), params.abs_scale_floor)
        out[rows] = np.where(enough, departure, np.nan)
    return out


def peer_z(values: np.ndarray, groups: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Robust z of each series' departure from its peers, against its own usual departure.

    A meter that always reads 10 % above its neighbours is not unusual; one
    that starts drifting away from them is (tampering, a failing meter).
    """
    return robust_baseline(peer_residual(values, groups, params), params, alpha=params.peer_alpha, trend=False).z


# ---------------------------------------------------------------- night flow


def night_minimum(values: np.ndarray, times: np.ndarray, utc_offset_h: int,
                  params: DetectorParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum flow of each night window (local hours night_start_h..night_end_h).

    times: one shared (T,) row in ms. Returns (night_day (N,) local day
    numbers, minima (S, N), ready_ms (N,) the UTC time each window closes,
    when its minimum becomes known). The loop runs over nights, not samples.
    """
    x = as_matrix(values)
    t = np.asarray(times, dtype=np.int64)
    if t.shape != (x.shape[1],):
        raise DetectorInputError("night_minimum needs one shared (T,) row of times")
    day_ms = 24 * 3600 * 1000
    local = to_local(t, params.time_zone, utc_offset_h)
    day = local // day_ms
    hour = (local % day_ms) / 3_600_000.0
    in_night = (hour >= params.night_start_h) & (hour < params.night_end_h)
    nights = np.unique(day[in_night])
    minima = np.full((x.shape[0], nights.size), np.nan)
    for i, night in enumerate(nights):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            minima[:, i] = np.nanmin(x[:, in_night & (day == night)], axis=1)
    ready = np.array([to_utc(night * day_ms + params.night_end_h * 3_600_000, params.time_zone, utc_offset_h)
                      for night in nights], dtype=np.int64)
    return nights, minima, ready


def night_flow_score(minima: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Leak score per (series, night): the rise of the night minimum over the median of earlier nights.

    score = clip(rise / night_rise_rel, 0, 1), rise relative to that median;
    0 until two earlier nights exist. Minimum night flow is the standard
    leakage indicator of the IWA water-loss methodology (Lambert, 1994).
    """
    m = as_matrix(minima)
    score = np.zeros(m.shape)
    for night in range(2, m.shape[1]):
        history = m[:, max(0, night - params.night_history):night]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            base = np.nanmedian(history, axis=1)
        rise = (m[:, night] - base) / np.maximum(np.abs(base), 1e-6)
        score[:, night] = np.nan_to_num(np.clip(rise / params.night_rise_rel, 0.0, 1.0), nan=0.0)
    return score


