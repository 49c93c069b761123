"""Two regimes of a bursty series (a quiet base and its bursts), for the row score of a CSV.

A pump, a batch job or a compressor runs in bursts: the series jumps between a quiet base and a burst level
and back. The forecasters behind the point z (a profile, a slow and a quick level) lag each jump, so every
burst's onset and end are far misses, the point z's scale grows with them, and the series' tail learns them:
a spike of 10 base sigmas then reads as z ~2 and scores 0. A reading of such a series is better judged against
the regime it is likelier under: a plausible base reading or a plausible burst reading is no surprise, one that
is neither is. `regime_point` learns the two regimes causally (each one's level and spread from its own
readings) and gives their z in place of the point z once the series has shown itself bursty: two regimes far
apart in their own spreads, both visited again and again, that together forecast the readings better than one
quick level does and better than a mean of each hour of the day does (running means of the log-likelihood ratio).
From then on (while the two regimes stand apart) the series keeps that z: switching back and forth between two
scales made false alarms of its own. Once bursty it is held so (a gate's hysteresis, `hold`) while the regimes
stand `hold` times as far apart as it took and still forecast better than the time of day by `hold` times that
margin: a pump whose burst regime's spread sits near the separation's edge flickered out of it at burst onsets,
and each such reading was judged by its point z again, against a tail the regime z had taught (no burst in it). A
road's rush hour, which the time of day explains, is not held. Not every series that passes is bursty: a daily
drop that starts within an hour (a square wave of two levels) passes too, since the hour's mean mixes both levels
at its edges; there a reading at the other level at the wrong time of day is no surprise to this z.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Fixed rates (not tuned): a regime's level and variance learn at ~50 readings once it has 50 (1/n before);
# the regimes' shares, the running log-likelihood gains at ~100; the one quick level at 2 readings; a time-of-day
# slot's mean and variance at 20 visits; errors are clipped at 3 spreads where they teach (an anomaly moves no
# regime much); a second regime not confirmed within 500 readings was a lone far reading, and is dropped.
_ALPHA = 0.02
_RUNNING_ALPHA = 0.01
_QUICK_ALPHA = 0.5
_SLOT_ALPHA = 0.05
_CLIP = 3.0
_FORGET = 500
# From the fifth identical reading in a row on (a run of _STUCK_RUN repeats), a reading teaches no regime: a sensor
# stuck at a burst's level made that regime's spread ~0 and every later burst hundreds of its sigmas. Chosen on the
# tuned part of the CSV corpus (4 over 8: the same F1 within 0.001, 10 more windows found at the row-wise best).
_STUCK_RUN = 4


@numba.njit(cache=True, nogil=True, inline="always")
def _log_normal(x: float, mean: float, variance: float) -> float:
    return -0.5 * (x - mean) * (x - mean) / variance - 0.5 * math.log(variance) - _HALF_LOG_2PI


@numba.njit(cache=True, nogil=True, inline="always")
def _learn(x: float, level: float, var: float, spread: float, n: float, clip: float) -> tuple[float, float]:
    """One reading taught to a level and variance (EWMA at _ALPHA, 1/n while young), its error clipped at clip
    sqrt(spread) (spread: the variance, floored; clip 0: not clipped)."""
    e = x - level
    a = max(_ALPHA, 1.0 / n)
    if clip > 0.0:
        c = clip * clip * spread
        return level + a * max(min(e, math.sqrt(c)), -math.sqrt(c)), var + a * (min(e * e, c) - var)
    return level + a * e, var + a * (e * e - var)


@numba.njit(cache=True, nogil=True)
def _regime_point(x: np.ndarray, point: np.ndarray, slot: np.ndarray, out: np.ndarray, shadow: np.ndarray,
                  gate: np.ndarray, which: np.ndarray, separation: float, confirm: float, gain_on: float,
                  hour_on: float, hold: float) -> None:
    """out = point, but the z against the likelier of two learnt regimes once the series is bursty (module doc).

    Regime 0 starts at the first reading; regime 1 at the first reading past `separation` of regime 0's
    spreads (dropped after _FORGET readings without a visit until it has `confirm` readings). Each reading
    teaches the regime it is likelier under (each weighted by its running share). Bursty: both regimes
    confirmed, their levels `separation` of the larger spread apart, and the running mean of the mixture's
    log-likelihood less that of one quick level above `gain_on` nats, less that of the time of day's slot
    (`slot`, 0..; its running mean and variance) above `hour_on`. Then bursty while the regimes stand apart, or
    while they stand `hold` times as far apart with the gain over the time of day above `hold` times `hour_on`
    (hold 1: only while apart, as on entry).
    shadow: the z against the likelier regime wherever the second is confirmed (NaN elsewhere: before, or
    no point z); gate: whether the series is bursty at that reading; which: the likelier regime (0 or 1) wherever
    the second is confirmed, -1 elsewhere."""
    level = np.full(2, math.nan)
    var = np.zeros(2)
    count = np.zeros(2)
    share = 1.0  # the running share of readings in regime 0
    idle = 0  # readings since regime 1 was last visited
    quick = quick_var = math.nan
    gain = hour_gain = 0.0
    slots = int(slot.max()) + 1 if slot.size else 1
    hour_level = np.full(slots, math.nan)
    hour_var = np.zeros(slots)
    bursty = False
    run = 0
    resolution = math.inf  # the smallest non-zero step seen: no spread is below a quarter of it
    last = math.nan
    for t in range(x.size):
        out[t] = point[t]
        shadow[t] = math.nan
        gate[t] = False
        which[t] = -1
        xt = x[t]
        if math.isnan(xt):
            continue
        run = run + 1 if xt == last else 0
        repeat = run >= _STUCK_RUN  # a stuck run's repeats teach no regime (they would make one of spread ~0)
        if not math.isnan(last) and xt != last:
            resolution = min(resolution, abs(xt - last))
        last = xt
        floor = max(0.0625 * resolution * resolution if resolution < math.inf else 0.0, 1e-12 * xt * xt, 1e-300)
        if math.isnan(level[0]):
            level[0] = quick = xt
            count[0] = 1.0
            continue
        if count[0] < 2.0:
            var[0] = quick_var = max((xt - level[0]) * (xt - level[0]), floor)
        v0 = max(var[0], floor)
        # The two references, each judged before it learns this reading: one quick level and the time of day.
        quick_ll = _log_normal(xt, quick, max(quick_var, floor))
        err = xt - quick
        quick_var += _QUICK_ALPHA * (min(err * err, 16.0 * _CLIP * _CLIP * max(quick_var, floor)) - quick_var)
        quick += _QUICK_ALPHA * err
        b = slot[t]
        hour_ll = math.nan
        if math.isnan(hour_level[b]):
            hour_level[b], hour_var[b] = xt, max(quick_var, floor)
        else:
            hv = max(hour_var[b], floor)
            hour_ll = _log_normal(xt, hour_level[b], hv)
            eh = xt - hour_level[b]
            hour_var[b] += _SLOT_ALPHA * (min(eh * eh, 16.0 * _CLIP * _CLIP * hv) - hour_var[b])
            hour_level[b] += _SLOT_ALPHA * eh
        if math.isnan(level[1]):
            if count[0] >= 3.0 and abs(xt - level[0]) > separation * math.sqrt(v0):
                level[1], var[1], count[1], idle = xt, v0, 1.0, 0
                share = 1.0 - _RUNNING_ALPHA
            elif not repeat:
                count[0] += 1.0
                level[0], var[0] = _learn(xt, level[0], var[0], v0, count[0], _CLIP if count[0] > 3.0 else 0.0)
            continue
        v1 = max(var[1], floor)
        l0 = math.log(max(share, 1e-3)) + _log_normal(xt, level[0], v0)
        l1 = math.log(max(1.0 - share, 1e-3)) + _log_normal(xt, level[1], v1)
        top = max(l0, l1)
        mixture_ll = top + math.log(math.exp(l0 - top) + math.exp(l1 - top))
        gain += _RUNNING_ALPHA * (mixture_ll - quick_ll - gain)
        if not math.isnan(hour_ll):
            hour_gain += _RUNNING_ALPHA * (mixture_ll - hour_ll - hour_gain)
        k = 0 if l0 >= l1 else 1
        vk = v0 if k == 0 else v1
        apart = count[1] >= confirm and abs(level[1] - level[0]) > separation * math.sqrt(max(v0, v1))
        # Once bursty, held while the regimes stand hold times as far apart and beat the time of day by hold times
        # its margin: a burst regime whose spread sits near the separation's edge would flicker in and out.
        held = (count[1] >= confirm and abs(level[1] - level[0]) > hold * separation * math.sqrt(max(v0, v1))
                and hour_gain > hold * hour_on)
        bursty = (apart and (bursty or (gain > gain_on and hour_gain > hour_on))) or (bursty and held)
        gate[t] = bursty
        if count[1] >= confirm:
            which[t] = k
        if count[1] >= confirm and not math.isnan(point[t]):
            shadow[t] = (xt - level[k]) / math.sqrt(vk)
        if bursty and not math.isnan(point[t]):
            out[t] = (xt - level[k]) / math.sqrt(vk)
        if repeat:
            continue
        count[k] += 1.0
        level[k], var[k] = _learn(xt, level[k], var[k], vk, count[k], _CLIP)
        share += _RUNNING_ALPHA * ((1.0 if k == 0 else 0.0) - share)
        idle = 0 if k == 1 else idle + 1
        if count[1] < confirm and idle > _FORGET:  # a lone far reading was no regime
            level[1], var[1], count[1] = math.nan, 0.0, 0.0
            share = 1.0


class Regimes(NamedTuple):
    """What `regimes` finds in one series (T,)."""

    point: np.ndarray  # the point z, or the z against the likelier regime where the series is bursty
    shadow: np.ndarray  # the z against the likelier regime wherever the second regime is confirmed, else NaN
    adopt: int  # the first bursty row with least_rows regime z's before it (-1: none); see row_surprise's adopt
    bursty: np.ndarray  # bool: the rows judged against the regimes (point is their z there)
    which: np.ndarray  # int8: the likelier regime (0 quiet, 1 the second) wherever the second is confirmed, else -1


def regimes(x: np.ndarray, point: np.ndarray, slot: np.ndarray | None, separation: float, confirm: float,
            gain_on: float, hour_on: float, hold: float, least_rows: int) -> Regimes:
    """regime_point, with the regime z wherever it exists and the row from which the row score may judge the
    series by the tail that z taught (the first row judged against the regimes after least_rows regime z's:
    a tail learnt over fewer is still the prior's). separation <= 0: the point z as it is, no regime z."""
    if separation <= 0:
        return Regimes(point, np.full(point.shape, np.nan), -1, np.zeros(point.shape, dtype=np.bool_),
                       np.full(point.shape, -1, dtype=np.int8))
    out = np.empty(point.shape)
    shadow = np.empty(point.shape)
    gate = np.empty(point.shape, dtype=np.bool_)
    which = np.empty(point.shape, dtype=np.int8)
    slot = np.zeros(point.shape, dtype=np.int64) if slot is None else np.ascontiguousarray(slot, dtype=np.int64)
    _regime_point(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(point, dtype=np.float64), slot,
                  out, shadow, gate, which, float(separation), float(confirm), float(gain_on), float(hour_on),
                  float(hold))
    known = ~np.isnan(shadow)
    before = np.cumsum(known) - known  # regime z's before each row
    ready = np.flatnonzero(gate & ~np.isnan(point) & (before >= least_rows))
    return Regimes(out, shadow, int(ready[0]) if ready.size else -1, gate, which)


def regime_point(x: np.ndarray, point: np.ndarray, slot: np.ndarray | None, separation: float, confirm: float,
                 gain_on: float, hour_on: float, hold: float) -> np.ndarray:
    """The point z of one series (T,), judged against its two regimes once it is bursty (_regime_point).
    slot: each reading's time-of-day slot (None: one slot). separation <= 0: the point z as it is."""
    return regimes(x, point, slot, separation, confirm, gain_on, hour_on, hold, 0).point
