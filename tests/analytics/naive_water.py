"""A slow, plainly correct water balance: loops over meters, days and intervals (the reference the
vectorised analytics/water.py is checked against, as tests/analytics/reference.py is for the detectors)."""

import math

import numpy as np

DAY_MS, HOUR_MS = 86_400_000, 3_600_000


def naive_balance(inlets, inlet_dma, customers, customer_dma, parent, times_ms, step_ms, offset_h, night) -> dict:
    n = len(parent)
    k = len(times_ms)
    gross = [[0.0] * k for _ in range(n)]
    gap = [[False] * k for _ in range(n)]
    for m, d in enumerate(inlet_dma):
        for t in range(k):
            if math.isnan(inlets[m][t]):
                gap[d][t] = True
            else:
                gross[d][t] += float(inlets[m][t])
    net = [row[:] for row in gross]
    for child, p in enumerate(parent):
        if p >= 0:
            for t in range(k):
                net[p][t] -= gross[child][t]
                gap[p][t] = gap[p][t] or gap[child][t]
    metered = [[0.0] * k for _ in range(n)]
    for m, d in enumerate(customer_dma):
        for t in range(k):
            if not math.isnan(customers[m][t]):
                metered[d][t] += float(customers[m][t])
    days: dict[int, list[int]] = {}
    for t, when in enumerate(times_ms):
        days.setdefault((int(when) + offset_h * HOUR_MS) // DAY_MS, []).append(t)
    out = {name: np.full((n, len(days)), np.nan) for name in
           ("system_input_m3", "billed_m3", "night_flow_lps", "night_use_lps", "leakage_lps")}
    for d in range(n):
        for j, ts in enumerate(days.values()):
            seen = [net[d][t] for t in ts if not gap[d][t]]
            if seen:
                out["system_input_m3"][d, j] = sum(seen) / len(seen) * len(ts) * step_ms / 1e6
            out["billed_m3"][d, j] = sum(metered[d][t] for t in ts) * step_ms / 1e6
            at_night = [t for t in ts if not gap[d][t] and
                        night[0] <= ((int(times_ms[t]) + offset_h * HOUR_MS) % DAY_MS) / HOUR_MS < night[1]]
            if at_night:
                out["night_flow_lps"][d, j] = sum(net[d][t] for t in at_night) / len(at_night)
                out["night_use_lps"][d, j] = sum(metered[d][t] for t in at_night) / len(at_night)
                out["leakage_lps"][d, j] = out["night_flow_lps"][d, j] - out["night_use_lps"][d, j]
    return out
