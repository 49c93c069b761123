"""The live engine's minimum-night-flow check: a new leak raises a water meter's lowest flow of the night.

Minimum night flow is the IWA indicator of leakage: between 02:00 and 04:00
local time almost nobody draws water, so what still flows is mostly leaks.
Once a night window has closed, each water meter's minimum of the window
is taken from its ring buffer (all meters at once) and compared with the
minima of its earlier nights (detectors.night_flow_score); a rise of
`night_rise_rel` over their median opens a `night_flow_rise` incident, the
next normal night clears it. `city evaluate` does the same over its grid.
"""

import warnings

import numpy as np

from analytics.config import DetectorParams
from analytics.detectors import night_flow_score
from analytics.incidents import Detail, Finding
from analytics.learnt import LearntState
from analytics.localtime import to_local, to_utc

METRIC = "flow_lps"
GROUP = "night_flow"  # its own incident beside the meter's readings incident
DAY_MS, HOUR_MS = 86_400_000, 3_600_000


def check_night_flow(learnt: LearntState, detector: DetectorParams, now_ms: int) -> list[Finding]:
    """The findings of the last closed night window, once: [] until a new night has closed.

    learnt: the engine's state (its flow_lps buffers are read; its
    night_history and last_night are updated in place). detector: the night
    window, the nights kept and the thresholds (its utc_offset_h is local
    time). now_ms: the engine's clock. Returns one finding per water meter
    with a reading in that night window; the incident opens at open_score and
    is cleared by a night below clear_score.
    """
    block = learnt.blocks.get(METRIC)
    p = detector
    local_now = int(to_local(now_ms, p.time_zone, p.utc_offset_h))
    night = local_now // DAY_MS if (local_now % DAY_MS) >= p.night_end_h * HOUR_MS else local_now // DAY_MS - 1
    if block is None or night <= learnt.last_night:
        return []
    learnt.last_night = night
    n_rows = len(block.keys)
    if learnt.night_history.shape[0] < n_rows:
        grow = np.full((n_rows - learnt.night_history.shape[0], learnt.night_history.shape[1]), np.nan)
        learnt.night_history = np.vstack([learnt.night_history, grow])
    minima = _night_minima(block.values[:n_rows], block.times[:n_rows], night, p)
    history = np.roll(learnt.night_history[:n_rows], -1, axis=1)
    history[:, -1] = minima
    learnt.night_history[:n_rows] = history
    score = night_flow_score(history, p)[:, -1]
    score = np.where(np.isnan(minima), np.nan, score)
    window_end = to_utc(night * DAY_MS + p.night_end_h * HOUR_MS, p.time_zone, p.utc_offset_h)
    findings = []
    for row in np.flatnonzero(~np.isnan(score)):
        device = block.keys[row][0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            usual = float(np.nanmedian(history[row, :-1])) if np.isfinite(history[row, :-1]).any() else None
        # Hysteresis by the night: opens at open_score, clears on a night below clear_score.
        is_open = (device, GROUP) in learnt.incidents
        active = score[row] >= (p.clear_score if is_open else p.open_score)
        findings.append(Finding(device, METRIC, bool(active), float(score[row]), "night_flow_rise", "warning",
                                int(window_end), Detail(float(minima[row]), usual), group=GROUP))
    return findings


def _night_minima(values: np.ndarray, times: np.ndarray, night: int, p: DetectorParams) -> np.ndarray:
    """Per row, the lowest reading inside the night window of local day `night` (NaN: none)."""
    local = to_local(times, p.time_zone, p.utc_offset_h)
    in_window = (local // DAY_MS == night) & (local % DAY_MS >= p.night_start_h * HOUR_MS) & \
        (local % DAY_MS < p.night_end_h * HOUR_MS)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a meter with no reading that night
        return np.nanmin(np.where(in_window, values, np.nan), axis=1)
