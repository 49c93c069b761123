"""Slow drift away from the daily profile: a fast against a slow robust level of the profile residual."""

import math

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors import kernels
from analytics.detectors.base import as_matrix, check_alphas
from analytics.detectors.level import _holt, robust_baseline


def drift_evidence(residual: np.ndarray, scale: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """How unusually a series is trending away from its daily profile, in robust sigmas (>= 0; 0 until known).

    residual (S, T): the readings less their plain daily/weekly profile;
    scale: the robust scale of the readings around the profile. A fast and
    a slow robust level of the residual (drift_fast_alpha,
    drift_slow_alpha; Huber-clipped, so a spike barely moves them) differ by
    about the slope times the difference of their memories while the series
    drifts; that gap is compared with its own usual size (a robust baseline
    with a memory of about two days of samples, drift_scale_alpha), so a
    series whose day-to-day bias wanders a lot needs a larger trend. The
    evidence is the smaller of that z and the fast level off the profile
    in units of its own standard error (scale * sqrt(alpha / (2 - alpha))),
    in the same direction, while the reading itself is at least
    drift_min_z scales off that way (when a drift is repaired the readings
    return to the profile at once, while the clipped levels still remember
    it: no new anomaly), held over drift_hold_samples readings (a running
    minimum: one odd reading is no drift). A slow drift (a fouling sensor,
    a meter losing calibration) that the running level learns as it goes is
    caught while it drifts, not when it is repaired. Causal, all series at
    once.
    """
    r = np.ascontiguousarray(as_matrix(residual), dtype=np.float64)
    check_alphas(params.drift_scale_alpha)  # robust_baseline's check, as before (the two levels had none)
    # The fast and the slow level, their gap, the gap's z against its own flat level and the evidence in one
    # compiled pass (kernels.drift_pass): the same bits as the numpy steps of _drift_evidence_numpy (and as the
    # passes it replaced: level._holt_both over r twice, kernels.drift_gap, robust_baseline, kernels.drift_tail).
    evidence = np.empty(r.shape)
    kernels.drift_pass(r, np.ascontiguousarray(scale, dtype=np.float64), float(params.drift_fast_alpha),
                       float(params.drift_slow_alpha), float(params.drift_scale_alpha),
                       float(1.0 / params.drift_slow_alpha), int(params.warmup), float(params.huber_clip),
                       float(params.mad_to_sigma), float(params.rel_scale_floor), float(params.abs_scale_floor),
                       float(math.sqrt(params.drift_fast_alpha / (2 - params.drift_fast_alpha))),
                       float(params.drift_min_z), evidence)
    return _held(evidence, params)


def _drift_evidence_numpy(residual: np.ndarray, scale: np.ndarray,
                          params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """drift_evidence in whole-array numpy (the code its compiled passes replaced; their reference in the tests)."""
    r = as_matrix(residual)
    fast = _holt(r, params.drift_fast_alpha, params.drift_fast_alpha, False, params)[0]  # levels only: no z
    slow = _holt(r, params.drift_slow_alpha, params.drift_slow_alpha, False, params)[0]
    # The gap's own baseline starts once the slow level has settled (before, the gap is its start-up transient).
    settled = np.cumsum(~np.isnan(r), axis=1) >= 1.0 / params.drift_slow_alpha
    trend = robust_baseline(np.where(settled, fast - slow, np.nan), params, alpha=params.drift_scale_alpha,
                            trend=False).z
    with np.errstate(invalid="ignore", divide="ignore"):
        # The fast level in units of its own standard error (an EWMA of ~30 samples averages the noise away).
        off = np.nan_to_num(fast / (scale * math.sqrt(params.drift_fast_alpha / (2 - params.drift_fast_alpha))))
        now = np.nan_to_num(r / scale)
    trend = np.nan_to_num(trend)
    # And the reading itself must be off the profile that way (by drift_min_z): when a drift is
    # repaired the readings are back at once, while the Huber-clipped fast level takes a while.
    up = np.minimum(trend, off) * (now >= params.drift_min_z)
    down = np.minimum(-trend, -off) * (now <= -params.drift_min_z)
    evidence = np.maximum(np.maximum(up, down), 0.0)
    return _held(evidence, params)


def _held(evidence: np.ndarray, params: DetectorParams) -> np.ndarray:
    # A drift is slow: its evidence must hold over the last drift_hold_samples readings (a running
    # minimum), so one odd reading against a profile that is briefly off is no drift.
    # (kernels.running_minimum: scipy.ndimage.minimum_filter1d's bits, without scipy's import.)
    width = min(params.drift_hold_samples, evidence.shape[1]) if evidence.shape[1] else 1
    if width > 1:
        held = np.empty(evidence.shape)
        kernels.running_minimum(np.ascontiguousarray(evidence, dtype=np.float64), width, held)
        evidence = held
    return evidence


