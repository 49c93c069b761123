"""Fixed rules: a reading outside an engineering limit, a device that stopped sending."""

import numpy as np

from analytics.config import DEFAULT_PARAMS, DetectorParams, Limit
from analytics.detectors.base import as_matrix


def limit_score(values: np.ndarray, limit: Limit) -> np.ndarray:
    """1 where a reading is outside the limit's [low, high], else 0 (missing readings score 0)."""
    x = as_matrix(values)
    with np.errstate(invalid="ignore"):
        outside = np.zeros(x.shape, dtype=bool)
        if limit.low is not None:
            outside |= x < limit.low
        if limit.high is not None:
            outside |= x > limit.high
    return outside.astype(np.float64)


def silence_score(last_seen_ms: np.ndarray, now_ms: int, interval_ms: np.ndarray,
                  params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Per series, how silent it is: 0 up to `silence_factor` intervals without data, 1 at twice that.

    A device that never reported (NaN last_seen) scores 0: it is not silent, it is new.
    """
    last = np.asarray(last_seen_ms, dtype=np.float64)
    interval = np.maximum(np.asarray(interval_ms, dtype=np.float64), 1.0)
    gap = (now_ms - last) / interval
    factor = params.silence_factor
    score = np.clip((gap - factor) / factor, 0.0, 1.0)
    return np.nan_to_num(score, nan=0.0)


