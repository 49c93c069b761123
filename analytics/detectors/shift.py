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


def cusum_sides_of_three(z_a: np.ndarray, z_b: np.ndarray, z_c: np.ndarray,
                         params: DetectorParams = DEFAULT_PARAMS) -> tuple[np.ndarray, ...]:
    """cusum_sides of three z arrays of one shape in one compiled pass (kernels.cusum_three, the same bits as
    three calls): (upper_a, lower_a, upper_b, lower_b, upper_c, lower_c)."""
    zs = [np.ascontiguousarray(as_matrix(z), dtype=np.float64) for z in (z_a, z_b, z_c)]
    if not zs[0].shape == zs[1].shape == zs[2].shape:
        raise ValueError("the three z arrays must have the same shape")
    k, h = params.cusum_k, params.cusum_h
    out = tuple(np.empty(zs[0].shape) for _ in range(6))
    kernels.cusum_three(*zs, *out, float(k), float(h), float(params.cusum_rho_alpha), float(params.z_mid / h),
                        float(params.cusum_cap * h))
    return out


def cusum_score(z: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """cusum_evidence as a score in [0, 1]."""
    return calibrate(cusum_evidence(z, params), params)


