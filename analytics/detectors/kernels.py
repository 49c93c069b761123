"""The per-step recursions of the detectors, compiled with numba (a required dependency).

Holt's robust smoothing and the two-sided CUSUM carry state from one sample
to the next, so numpy could only vectorise them across series and step over
time in Python. Compiled, each series runs its recursion in a tight loop over
its own contiguous row. This is the one fast path: the slow, obviously
correct versions that judge it are plain Python in tests/analytics/reference.py.
"""

import math

import numba
import numpy as np


def _holt(x: np.ndarray, expected: np.ndarray, scale: np.ndarray, a_level: float, a_scale: float,
          a_trend: float, warmup: int, clip: float, mad_to_sigma: float, rel_floor: float, abs_floor: float) -> None:
    """robust_baseline's recursion for (S, T) values x; fills expected and scale (NaN before a series' first reading).

    Start-up: plain running means (step 1/n) and unclipped updates until
    `warmup` readings; then Huber-clipped EWMAs.
    """
    n_series, n_times = x.shape
    for s in range(n_series):
        level = slope = deviation = count = quantum = 0.0
        last = math.nan
        for t in range(n_times):
            xt = x[s, t]
            valid = not math.isnan(xt)
            seen = count > 0
            warm = count >= warmup
            forecast = level + slope
            sc = max(max(deviation * mad_to_sigma, rel_floor * abs(forecast) + abs_floor), 0.5 * quantum)
            expected[s, t] = forecast if seen else math.nan
            scale[s, t] = sc if seen else math.nan
            if not valid:
                continue  # a missing reading freezes the state
            residual = xt - forecast
            step_level = max(a_level, 1.0 / (count + 1.0))
            step_scale = max(a_scale, 1.0 / max(count, 1.0))
            limit = clip * sc
            clipped = min(max(residual, -limit), limit) if warm else residual
            level = forecast + step_level * clipped if seen else xt
            if warm:
                slope = slope + a_trend * clipped
            spread = min(abs(residual), limit) if warm else abs(residual)
            if seen:
                deviation = deviation + step_scale * (spread - deviation)
            step = abs(xt - last)
            if step > 0 and (quantum == 0 or step < quantum):
                quantum = step
            last = xt
            count += 1.0


def _cusum(z: np.ndarray, upper_out: np.ndarray, lower_out: np.ndarray, k: float, h: float, rho_alpha: float,
           unit: float, cap: float) -> None:
    """cusum_sides' recursion for (S, T) z (NaN counts as 0); fills the upward and downward evidence."""
    n_series, n_times = z.shape
    for s in range(n_series):
        upper = lower = lag_product = previous = 0.0
        energy = 1.0
        for t in range(n_times):
            zt = z[s, t]
            zt = 0.0 if math.isnan(zt) else min(max(zt, -h / 2), h / 2)
            lag_product += rho_alpha * (zt * previous - lag_product)
            energy += rho_alpha * (zt * zt - energy)
            rho = min(max(lag_product / max(energy, 1e-12), 0.0), 0.95)
            step = zt * math.sqrt((1.0 - rho) / (1.0 + rho))
            previous = zt
            upper = min(max(0.0, upper + (step - k)), cap)
            lower = min(max(0.0, lower - (step + k)), cap)
            upper_out[s, t] = upper * unit
            lower_out[s, t] = lower * unit


holt = numba.njit(cache=True, nogil=True)(_holt)
cusum = numba.njit(cache=True, nogil=True)(_cusum)
