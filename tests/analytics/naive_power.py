"""Slow, obviously correct twins of analytics/en50160.py and analytics/feederloss.py: one meter,
one week, one value at a time, written from the standard's wording and the docstrings."""

import math


def week_verdict(values: list[float], band: tuple[float, float], always: tuple[float, float], share: float,
                 min_coverage: float) -> str:
    present = [v for v in values if not math.isnan(v)]
    if len(present) < min_coverage * len(values):
        return "no_data"
    inside = sum(1 for v in present if band[0] <= v <= band[1])
    outside_always = sum(1 for v in present if v < always[0] or v > always[1])
    return "pass" if inside >= math.ceil(share * len(present) - 1e-9) and outside_always == 0 else "fail"


def pettitt_down(x: list[float], min_side: int) -> tuple[int, float]:
    """(k, K+): U_k = sum_{i<=k} sum_{j>k} sign(x_i - x_j), the largest over k with min_side values each side."""
    n = len(x)
    best_k, best = -1, -math.inf
    for k in range(min_side - 1, n - min_side):
        u = sum((x[i] > x[j]) - (x[i] < x[j]) for i in range(k + 1) for j in range(k + 1, n))
        if u > best:
            best_k, best = k, u
    return best_k, max(best, 0.0)


def feeder_loss(transformer: list[float], customers: list[list[float]]) -> float:
    """One feeder, one day: input minus the customers' sum; NaN if any value is missing."""
    values = [transformer, *[c for c in customers]]
    if any(math.isnan(v) for v in values):
        return math.nan
    return transformer - sum(customers)
