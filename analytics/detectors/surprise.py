"""The row score of `city score`: how surprising each reading is given only the readings before it.

`row_surprise` turns the detectors' evidence into one number per row, the
surprise -log10 p of the most surprising of five tests, each with its own
tail probability p:

- the reading itself (its signed point z from `combined.score_series`),
  under two hypotheses: nothing changed (against the baseline, plus the
  bias learnt after the last change), or the series changed within the last
  few readings (against their median), which costs `surprise_hazard`
  decades of prior odds. So the first rows of a shift are surprising and the
  rows after it are not (the change already happened), while a lone spike
  is surprising under both. The tail of |z| past `surprise_tail_u` is the
  series' own (an exponential tail learnt from its excesses, shrunk towards
  a normal law's), so heavy-tailed series need larger deviations; past the
  excesses it has shown, a young tail of a series that has lately had more
  excesses than a normal law (or more lone far readings: surprise_far_lone) is
  extrapolated with its shape's uncertainty (surprise_far_*), so a Student-t
  load's first far draws are no faults;
- a shift: the two-sided CUSUM of the bias-corrected z, p ~ exp(-2 k S)
  (Siegmund 1985). When it crosses h the change is accepted: the bias is set
  to the mean of the run and the sums start again (Page 1954; the restart
  of Lorden 1971). A new normal stops being surprising at once;
- a stuck sensor: the probability of the run of repeats (`flatline_nats`);
- a change of spread (where the readings are given): each reading's step from
  the previous one, squared, against the usual squared step of the series
  and of its time of day, in a CUSUM of the log-likelihood ratio of a
  larger variance (Page 1954), p <= exp(-S). The step is a decorrelated
  residual: the daily curve, a random walk's wander and the profile's
  persistent misses mostly cancel in it, where the point z (whose scale
  also follows the spread) hid a noise grown three to six times;
- optionally, a drift off the daily profile (`drift_evidence`, in sigmas, as a
  normal tail), less `surprise_drift_offset` decades: its evidence lasts as
  long as the drift, so only a strong one counts. `city score` gives it.
  Once it scored `surprise_drift_accept` decades it has been reported and
  is explained from the next row, as the new level after an accepted change
  is (until the drift evidence has been 0 for `surprise_drift_grace` rows).

`row_score` maps the surprise to [0, 1] the same way for every series:
0 up to `surprise_floor` decades (what clean data reaches now and then), then
u / (u + surprise_half) for u decades past it. The map never saturates: a
reading 30 sigmas off scores above one 10 sigmas off, at six decimals.
"""

import functools
import math

import numpy as np

from analytics.config import DAY_MS, DEFAULT_PARAMS, DetectorParams
from analytics.detectors import kernels
from analytics.detectors.base import as_matrix

# What the `which` output of row_surprise names.
TESTS = ("point", "shift", "flatline", "drift", "variance")


def _normal_tail(z: float) -> float:
    return math.erfc(z / math.sqrt(2.0))


def row_surprise(point: np.ndarray, flat_nats: np.ndarray, drift: np.ndarray | None = None,
                 params: DetectorParams = DEFAULT_PARAMS,
                 slot: np.ndarray | None = None,
                 values: np.ndarray | None = None, floor: float | None = None,
                 shadow: np.ndarray | None = None, adopt: np.ndarray | None = None,
                 regime: np.ndarray | None = None, bursty: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the surprise (decades, -log10 p) of the most surprising test, and which test (index into TESTS).

    Parameters: point (S, T) signed point z per reading, NaN where there is
    no reading or no trusted baseline yet; flat_nats (S, T) flatline
    surprise in nats; drift (S, T) drift evidence in sigmas (>= 0), optional
    (`city score` gives it; a drift's evidence lasts as long as the drift,
    hence its own large offset, params.surprise_drift_offset); slot (S, T) int, optional:
    each row's time-of-day slot (0 .. params.surprise_slots - 1, see
    time_slots): the tail past u is then also learnt per slot, so a series
    whose forecasts are always poor at one time of day (a rush hour that
    starts a little earlier or later each day) is judged by that time's own
    tail, and a quiet time keeps a light one; values (S, T), optional: the
    readings themselves, for the variance test (left out: no variance test); floor, optional: the caller
    reads no surprise below it (row_score's surprise_floor): where it is above a normal tail at
    surprise_tail_u, a row whose reading is within that u is given 0 for its own tail test instead of
    that test's value (below the floor; the erfc and log10 are most of a row's cost), so a row's surprise
    below the floor may be less than without it; at or above the floor it is the same, bit for bit.
    shadow (S, T) and adopt (S,) int, optional (detectors.regimes.regimes): a bursty series' z against its
    likelier regime (NaN where there is none) and the row where it may adopt the tail that z taught
    (-1: never): there, if that tail's excess per reading is at most surprise_adopt_ratio of the tail
    the point z taught, it becomes the series' tail (the bursts the point z learnt before the regimes
    were known no longer hide the spikes and dips judged against them).
    regime (S, T) int and bursty (S, T) bool, optional (detectors.regimes' which and bursty; no bursty: nowhere): each
    reading's likelier regime, -1 where there is none, and whether the series is judged against its regimes there:
    there the variance test judges a step against the larger of the usual step of the regime it ends in and the
    series' (each regime learns its own from the steps within it), so a burst's larger noise is its regime's
    normal.
    Returns: (surprise (S, T) float, which (S, T) int8). Causal: row t
    uses rows <= t only. Compiled (kernels.surprise), one series per row.
    """
    z = np.ascontiguousarray(as_matrix(point))
    flat = np.ascontiguousarray(as_matrix(flat_nats))
    drifting = np.zeros(z.shape) if drift is None else np.ascontiguousarray(np.nan_to_num(as_matrix(drift)))
    out = np.empty(z.shape)
    which = np.empty(z.shape, dtype=np.int8)
    slots = params.surprise_slots if slot is not None else 0
    where = np.zeros(z.shape, dtype=np.int64) if slot is None else np.ascontiguousarray(as_matrix(slot), np.int64)
    if slots and (where.min(initial=0) < 0 or where.max(initial=0) >= slots):
        raise ValueError(f"slot must be in 0..{slots - 1}")
    readings = np.zeros(z.shape) if values is None else np.ascontiguousarray(as_matrix(values), np.float64)
    if readings.shape != z.shape:
        raise ValueError("values must have the shape of point")
    if adopt is None:
        adopt_at = np.full(z.shape[0], -1, dtype=np.int64)
        regime_z = np.empty((1, 1))
    else:
        adopt_at = np.ascontiguousarray(adopt, dtype=np.int64).reshape(-1)
        regime_z = np.ascontiguousarray(as_matrix(shadow), np.float64)
        if adopt_at.shape != (z.shape[0],) or regime_z.shape != z.shape:
            raise ValueError("shadow must have the shape of point, adopt one row per series")
        if adopt_at.max(initial=-1) >= z.shape[1]:
            raise ValueError("adopt must be a row of point")
    if regime is None:
        regimes_at, bursty_at = np.full((1, 1), -1, dtype=np.int8), np.zeros((1, 1), dtype=np.bool_)
    else:
        regimes_at = np.ascontiguousarray(np.atleast_2d(regime), np.int8)
        bursty_at = np.ascontiguousarray(np.zeros(z.shape) if bursty is None else np.atleast_2d(bursty), np.bool_)
        if regimes_at.shape != z.shape or bursty_at.shape != z.shape:
            raise ValueError("regime and bursty must have the shape of point")
    u = params.surprise_tail_u
    prior_share = _normal_tail(u)
    kernels.surprise(z, flat, drifting, where, readings, out, which, float(u), float(prior_share),
                     float(params.surprise_prior_rows),
                     float(params.surprise_prior_excess * params.surprise_prior_count),
                     float(params.surprise_prior_count), float(params.surprise_excess_cap),
                     float(params.surprise_learn_max), float(params.surprise_learn_weight),
                     int(params.surprise_fast_rows), float(params.surprise_hazard), float(params.cusum_k),
                     float(params.cusum_h), float(params.cusum_rho_alpha), float(params.surprise_bias_alpha),
                     float(params.surprise_shift_offset), float(params.surprise_flat_offset), int(slots),
                     float(params.surprise_slot_rows), float(params.surprise_slot_count), values is not None,
                     float(params.surprise_var_ratio), float(params.surprise_var_clip), float(params.surprise_var_h),
                     float(params.surprise_var_offset), float(params.surprise_var_alpha),
                     float(params.surprise_var_slot_alpha), float(params.surprise_var_slot_rows),
                     float(params.surprise_var_floor), float(params.surprise_var_warmup),
                     float(params.surprise_xi_max), float(params.surprise_xi_prior),
                     float(params.surprise_drift_offset), int(params.surprise_drift_grace),
                     float(params.surprise_run_slot_rows), float(params.surprise_run_slot_alpha),
                     float(params.surprise_learn_cap), _below_u_unread(u, floor),
                     float(params.surprise_drift_accept), regime_z, adopt_at, float(params.surprise_adopt_ratio),
                     float(params.surprise_far_knee), float(params.surprise_far_shape),
                     float(params.surprise_far_share), 1.0 / max(float(params.surprise_far_rows), 1.0),
                     float(params.surprise_var_grid), regimes_at, bursty_at, float(params.surprise_far_lone),
                     lone_share_of_normal(params.surprise_far_lone))
    return out, which


@functools.cache
def lone_share_of_normal(c: float) -> float:
    """The share of a white normal noise's readings that are lone excursions (row_surprise's surprise_far_lone):
    at least c usual steps (c sqrt(2) sigmas) from both neighbours, on the same side: 2 E[Phi(Z - c sqrt 2)^2]
    (Z standard normal), by the trapezoid rule; 0.0081 at c 2, 0.0013 at c 2.5. 0 where c is not positive."""
    if c <= 0:
        return 0.0
    gap = c * math.sqrt(2.0)
    low, high, n = -10.0, gap + 12.0, 8000
    width = (high - low) / n
    total = 0.0
    for i in range(n + 1):
        y = low + i * width
        below = 0.5 * math.erfc((gap - y) / math.sqrt(2.0))  # P(a neighbour is at least gap under y)
        total += (0.5 if i in (0, n) else 1.0) * math.exp(-0.5 * y * y) * below * below
    return 2.0 * total * width / math.sqrt(2.0 * math.pi)


def _below_u_unread(u: float, floor: float | None) -> bool:
    """Whether a floor leaves the tail test of readings within u unread: it must be above the normal tail at u
    by a margin (half a decade) far beyond any rounding of erfc and log10, so the test, at most that tail,
    stays below it."""
    return floor is not None and floor > float(kernels._gauss_log10(u)) + 0.5


def time_slots(times_ms: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Each time's slot of the day, 0 .. params.surprise_slots - 1 (UTC plus params.utc_offset_h)."""
    slots = max(params.surprise_slots, 1)
    local = np.asarray(times_ms, dtype=np.int64) + params.utc_offset_h * 3_600_000
    return (local % DAY_MS) * slots // DAY_MS


def row_score(surprise: np.ndarray, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Surprise in decades to a score in [0, 1): 0 up to surprise_floor, then u / (u + surprise_half)."""
    excess = np.maximum(np.nan_to_num(np.asarray(surprise, dtype=np.float64)) - params.surprise_floor, 0.0)
    return excess / (excess + params.surprise_half)
