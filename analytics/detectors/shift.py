"""Level shifts: the two-sided CUSUM of a robust z."""

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors import kernels
from analytics.detectors.base import as_matrix, calibrate


def cusum_evidence(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Two-sided CUSUM of a robust z as evidence in sigma units: the larger side of cusum_sides."""
    upper, lower = cusum_sides(z, params)
    return np.maximum(upper, lower)


def cusum_sides(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided CUSUM of a robust z, as evidence in sigma units (z_mid at the decision interval h).

    S+ = max(0, S+ + z - k) and S- = max(0, S- - z - k); each (upward and
    downward evidence, returned in that order) divided by h and times
    z_mid, so `calibrate` scores S = h as 0.5. z is clipped at h / 2 so a
    single outlier cannot fire the CUSUM on its own (the level detector
    scores that). A NaN z counts as 0 (no evidence either way).
    Each step is scaled by sqrt((1 - rho) / (1 + rho)), rho the running
    lag-1 autocorrelation of z: the variance of a sum of AR(1) terms, so
    autocorrelated forecast errors do not look like a shift. Both sums are
    capped at `cusum_cap` * h: past that the evidence is certain anyway, and
    an uncapped sum built up over a long fault would keep alarming for as
    many samples after the fault ended (it decays by k per sample).

    Reference: Page (1954), "Continuous inspection schemes", Biometrika 41.
    """
    z = as_matrix(z)
    k, h = params.cusum_k, params.cusum_h
    z = np.ascontiguousarray(z, dtype=np.float64)
    upper_out, lower_out = np.empty(z.shape), np.empty(z.shape)
    kernels.cusum(z, upper_out, lower_out, float(k), float(h), float(params.cusum_rho_alpha),
                  float(params.z_mid / h), float(params.cusum_cap * h))
    return upper_out, lower_out


def cusum_score(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """cusum_evidence as a score in [0, 1]."""
    return calibrate(cusum_evidence(z, params), params)


