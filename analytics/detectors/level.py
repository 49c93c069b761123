"""The recent level: Holt's robust smoothing of each series, and the z of each reading against it."""

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams
from analytics.detectors import kernels
from analytics.detectors.base import Baseline, as_matrix, check_alphas


def robust_baseline(values: np.ndarray, params: DetectorParams = DEFAULT_PARAMS,
                    alpha: float | None = None, trend: bool = True) -> Baseline:
    """Robust running level and scale of each series, and the z of each new sample against them.

    Level: Holt's linear exponential smoothing (level and trend, so a daily
    ramp is followed without lag) whose update is Huber-clipped at
    `huber_clip` scales, so an outlier moves it by at most
    alpha * clip * scale. Scale: an EWMA of
    the (equally clipped) absolute deviation times sqrt(pi/2), a running
    counterpart of the mean absolute deviation. Until `warmup` samples have
    been seen both are plain running means and z is NaN. NaN readings are
    skipped (the state carries over the gap).

    Scale floor: never below half the smallest step the series has made
    (its resolution: one quantum up or down is not unusual) nor
    `rel_scale_floor` of its level, so a constant series does not make
    every change infinitely unusual.

    Parameters: values (S, T); params; alpha overrides both smoothing
    factors; trend=False keeps the level flat (for residuals, which have none).
    Returns: Baseline with (S, T) arrays. z[t] compares x[t] with the state
    built from x[:t] only (causal).

    References: Huber (1964), "Robust estimation of a location parameter";
    Hunter (1986), "The exponentially weighted moving average", J. Qual. Tech.;
    Holt (1957, reprinted 2004), "Forecasting seasonals and trends by
    exponentially weighted moving averages", Int. J. Forecasting 20.
    """
    x = as_matrix(values)
    a_level = params.level_alpha if alpha is None else alpha
    a_scale = params.scale_alpha if alpha is None else alpha
    check_alphas(a_level, a_scale)
    expected, scale = _holt(x, a_level, a_scale, trend, params)
    return Baseline(expected, scale, warm_z(x, expected, scale, params.warmup))


def warm_z(x: np.ndarray, expected: np.ndarray, scale: np.ndarray, warmup: int) -> np.ndarray:
    """(x - expected) / scale where the series had `warmup` readings (not NaN) before, else NaN: (S, T), one
    compiled pass (kernels.warm_z) for what cumsum, where and a division gave, the same bits."""
    z = np.empty(x.shape)
    kernels.warm_z(*(np.ascontiguousarray(a, dtype=np.float64) for a in (x, expected, scale)), int(warmup), z)
    return z


def _holt(x: np.ndarray, a_level: float, a_scale: float, trend: bool,
          params: DetectorParams, gaps: np.ndarray | None = None,
          restart: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """robust_baseline's recursion (kernels.holt, compiled): (expected, scale), (S, T). With `gaps` (S, T) and
    restart > 0, the level restarts at a reading after a gap of more than `restart` typical intervals."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    expected, scale = np.empty(x.shape), np.empty(x.shape)
    on = gaps is not None and restart > 0
    kernels.holt(x, expected, scale, float(a_level), float(a_scale),
                  float(a_level * params.trend_beta if trend else 0.0), int(params.warmup),
                  float(params.huber_clip), float(params.mad_to_sigma), float(params.rel_scale_floor),
                  float(params.abs_scale_floor), np.ascontiguousarray(gaps, dtype=np.float64) if on else _NO_GAPS,
                  float(restart) if on else 0.0)
    return expected, scale


def _holt_both(x_a: np.ndarray, a_level_a: float, a_scale_a: float, trend_a: bool, x_b: np.ndarray,
               a_level_b: float, a_scale_b: float, trend_b: bool, params: DetectorParams,
               gaps_b: np.ndarray | None = None, restart_b: float = 0.0) -> tuple[np.ndarray, ...]:
    """_holt on x_a and on x_b (same shape; `gaps_b`, `restart_b`: _holt's for the second) in one compiled pass
    (kernels.holt_two: the same bits as two calls): (expected_a, scale_a, expected_b, scale_b)."""
    x_a = np.ascontiguousarray(x_a, dtype=np.float64)
    x_b = x_a if x_b is x_a else np.ascontiguousarray(x_b, dtype=np.float64)
    if x_a.shape != x_b.shape:
        raise ValueError("both series must have the same shape")
    out = tuple(np.empty(x_a.shape) for _ in range(4))
    on = gaps_b is not None and restart_b > 0
    kernels.holt_two(x_a, x_b, *out, float(a_level_a), float(a_scale_a),
                     float(a_level_a * params.trend_beta if trend_a else 0.0), float(a_level_b), float(a_scale_b),
                     float(a_level_b * params.trend_beta if trend_b else 0.0), int(params.warmup),
                     float(params.huber_clip), float(params.mad_to_sigma), float(params.rel_scale_floor),
                     float(params.abs_scale_floor), np.ascontiguousarray(gaps_b, dtype=np.float64) if on else _NO_GAPS,
                     float(restart_b) if on else 0.0)
    return out


_NO_GAPS = np.zeros((1, 1))


