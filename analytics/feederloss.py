"""Losses per feeder and tampering suspects, every feeder and meter at once.

Losses: a feeder's input (its transformer meter's energy) minus the energy its customers' meters
recorded, per day and over the period, in kWh and as a % of the input. That is technical losses
(I^2R in the lines, the transformer's own) plus non-technical ones (theft, tampering, meters that
under-record, unbilled connections), as a distribution utility's energy balance counts them.
A day where the transformer or any customer meter has no value has no loss figure (NaN): it would
otherwise show a missing meter's energy as loss.

Tampering suspects: a customer whose share of the feeder's input steps down and stays down. Per
meter, the Pettitt change-point test (Pettitt 1979, Applied Statistics 28(2):126-135) on the daily
share finds the most likely day of a downward step and its significance from ranks only, so a day
of odd consumption weighs no more than any other (robust). A legitimate drop in use (a house left
empty) lowers the transformer's energy as much as the meter's, so the feeder's loss does not move;
a meter that under-records leaves the transformer's energy where it was, so the feeder's loss rises
by about what the meter stopped recording. A suspect needs both: a significant downward step in
share and a matching rise in its feeder's loss. Suspects are ranked by the energy that went
unrecorded since the step (kWh a day times the days since).
"""

import warnings
from dataclasses import dataclass

import numpy as np

SUSPECT_P = 0.01  # Pettitt significance for a step
SUSPECT_MIN_DROP = 0.15  # the share falls by at least 15 % of what it was
CORROBORATION = 0.5  # the feeder's loss rises by at least half the meter's drop (kWh/day)
MIN_DAYS_EACH_SIDE = 3  # a step needs this many days before and after it
LOCAL_DAYS = 5  # the meter's drop: medians over this many days either side of its step
MAX_CANDIDATES = 12  # candidate steps fitted jointly per feeder (more: the rest are not assessed)


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name}: a 2-D array (meters x days), got {values.ndim}-D")
    return values


def _feeder_index(feeder_of: np.ndarray, n_customers: int, n_feeders: int) -> np.ndarray:
    feeder_of = np.asarray(feeder_of)
    if feeder_of.shape != (n_customers,) or not np.issubdtype(feeder_of.dtype, np.integer):
        raise ValueError(f"feeder_of: one feeder index per customer meter ({n_customers}), integers")
    if n_customers and (feeder_of.min() < 0 or feeder_of.max() >= n_feeders):
        raise ValueError(f"feeder_of: indices must be in 0..{n_feeders - 1}")
    return feeder_of.astype(np.int64)


def sum_by_feeder(customers: np.ndarray, feeder_of: np.ndarray, n_feeders: int) -> tuple[np.ndarray, np.ndarray]:
    """Per feeder and day: the customers' energy summed (NaN if any is missing) and how many are missing."""
    customers = _matrix(customers, "customers")
    n_customers, n_days = customers.shape
    feeder_of = _feeder_index(feeder_of, n_customers, n_feeders)
    cell = (feeder_of[:, None] * n_days + np.arange(n_days)[None, :]).ravel()
    present = np.isfinite(customers)
    total = np.bincount(cell, weights=np.where(present, customers, 0.0).ravel(), minlength=n_feeders * n_days)
    missing = np.bincount(cell, weights=(~present).ravel().astype(np.float64), minlength=n_feeders * n_days)
    total = total.reshape(n_feeders, n_days)
    missing = missing.reshape(n_feeders, n_days).astype(np.int64)
    return np.where(missing > 0, np.nan, total), missing


@dataclass(frozen=True)
class Losses:
    """Per feeder (rows) and day (columns), kWh; the period's totals over days with every meter present."""

    input_kwh: np.ndarray
    billed_kwh: np.ndarray
    loss_kwh: np.ndarray
    loss_pct: np.ndarray
    missing_meters: np.ndarray
    period_input_kwh: np.ndarray
    period_loss_kwh: np.ndarray
    period_loss_pct: np.ndarray
    complete_days: np.ndarray


def feeder_losses(transformer: np.ndarray, customers: np.ndarray, feeder_of: np.ndarray) -> Losses:
    """Losses per feeder and day.

    transformer: (feeders, days) energy into each feeder, kWh. customers: (customer meters, days)
    energy each recorded, kWh. feeder_of: (customer meters,) the feeder index of each. NaN: no value.
    Raises ValueError on shapes that do not agree, negative energy, or bad feeder indices.
    """
    transformer = _matrix(transformer, "transformer")
    customers = _matrix(customers, "customers")
    if customers.shape[1] != transformer.shape[1]:
        raise ValueError(f"customers cover {customers.shape[1]} days, transformers {transformer.shape[1]}")
    if (transformer < 0).any() or (customers < 0).any():
        raise ValueError("energy per day is never negative (a counter that went back: reset or replaced meter)")
    billed, missing = sum_by_feeder(customers, feeder_of, transformer.shape[0])
    loss = transformer - billed
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(transformer > 0, 100 * loss / transformer, np.nan)
        complete = np.isfinite(loss)
        period_in = np.where(complete, transformer, 0.0).sum(axis=1)
        period_loss = np.where(complete, loss, 0.0).sum(axis=1)
        period_pct = np.where(period_in > 0, 100 * period_loss / period_in, np.nan)
    return Losses(transformer, billed, loss, pct, missing, period_in, period_loss, period_pct,
                  complete.sum(axis=1))


def pettitt_down(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pettitt's test for a downward step in each row, all rows at once.

    x: (rows, n) with no NaN. Returns (k, statistic, p): the step comes after column k (0-based; the
    first k+1 values are before it), K+ = max over k of U_k, U_k = 2 * sum(ranks[:k+1]) - (k+1)(n+1)
    (large when early values rank high), and the approximate p = exp(-6 K^2 / (n^3 + n^2)) for a one-
    sided test. Ties get the mean of their ranks. Steps within MIN_DAYS_EACH_SIDE of an end are not
    considered.
    """
    rows, n = x.shape
    order = np.argsort(x, axis=1, kind="stable")
    ranks = np.empty_like(x)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), x.shape), axis=1)
    ranks = _mean_ties(x, order, ranks)
    k_count = np.arange(1, n + 1)
    u = 2 * np.cumsum(ranks, axis=1) - k_count * (n + 1)
    u[:, : MIN_DAYS_EACH_SIDE - 1] = -np.inf
    u[:, n - MIN_DAYS_EACH_SIDE:] = -np.inf
    k = np.argmax(u, axis=1)
    stat = np.maximum(u[np.arange(rows), k], 0.0)
    p = np.minimum(1.0, np.exp(-6 * stat**2 / (n**3 + n**2)))
    return k, stat, p


def _mean_ties(x: np.ndarray, order: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Average ranks within runs of equal values (vectorised over rows)."""
    ordered = np.take_along_axis(x, order, axis=1)
    new_run = np.ones_like(ordered, dtype=bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    if new_run.all():
        return ranks
    run_id = np.cumsum(new_run, axis=1) - 1 + (np.arange(x.shape[0]) * x.shape[1])[:, None]
    positions = np.broadcast_to(np.arange(1, x.shape[1] + 1, dtype=np.float64), x.shape)
    mean = np.bincount(run_id.ravel(), weights=positions.ravel()) / np.maximum(np.bincount(run_id.ravel()), 1)
    out = np.empty_like(ranks)
    np.put_along_axis(out, order, mean[run_id], axis=1)
    return out


@dataclass(frozen=True)
class Suspects:
    """One row per customer meter (all, in input order); `rank` orders the suspects (0 first, -1 not one)."""

    suspect: np.ndarray
    step_day: np.ndarray  # the first day after the step
    p: np.ndarray
    share_before: np.ndarray
    share_after: np.ndarray
    drop: np.ndarray  # 1 - after / before
    meter_drop_kwh_day: np.ndarray
    feeder_loss_rise_kwh_day: np.ndarray
    unrecorded_kwh: np.ndarray
    rank: np.ndarray


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with nothing in the mask: NaN
        return np.nanmedian(np.where(mask, values, np.nan), axis=1)


def without_technical(loss: np.ndarray, load_squared: np.ndarray) -> np.ndarray:
    """The loss with its load-dependent (I^2R) part taken out: loss - beta * load_squared per feeder.

    Technical losses grow with the square of the load, so from day to day they move with the day's
    sum of squared 10-minute loads and make most of the loss's noise. beta is fitted per feeder on
    day-to-day differences (a non-technical step is one outlier among them, clipped at 3 robust
    sigmas and refitted once), all feeders at once. What remains: a constant plus the non-technical part.
    """
    d_loss, d_q = np.diff(loss, axis=1), np.diff(load_squared, axis=1)
    ok = np.isfinite(d_loss) & np.isfinite(d_q)
    d_loss, d_q = np.where(ok, d_loss, 0.0), np.where(ok, d_q, 0.0)
    beta = (d_q * d_loss).sum(axis=1) / np.maximum((d_q**2).sum(axis=1), 1e-12)
    residual = d_loss - beta[:, None] * d_q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sigma = 1.4826 * np.nanmedian(np.where(ok, np.abs(residual), np.nan), axis=1)
    keep = ok & (np.abs(residual) <= 3 * np.nan_to_num(sigma)[:, None] + 1e-12)
    beta = (np.where(keep, d_q * d_loss, 0.0)).sum(axis=1) / np.maximum(np.where(keep, d_q**2, 0.0).sum(axis=1), 1e-12)
    return loss - np.maximum(beta, 0.0)[:, None] * load_squared


def tampering_suspects(transformer: np.ndarray, customers: np.ndarray, feeder_of: np.ndarray,
                       load_squared: np.ndarray | None = None) -> Suspects:
    """Meters whose share of their feeder's input steps down while the feeder's loss rises (module docstring).

    Same arguments as feeder_losses; days where the meter or its feeder has no value are filled with
    the meter's median share (they neither make nor hide a step). load_squared: (feeders, days) the
    sum over the day of the transformer's squared 10-minute mean load (kW^2); with it the loss's
    load-dependent part is taken out first (without_technical), which makes the rise far clearer.
    Needs 2 * MIN_DAYS_EACH_SIDE days.
    """
    losses = feeder_losses(transformer, customers, feeder_of)
    customers = _matrix(customers, "customers")
    n_customers, n_days = customers.shape
    if n_days < 2 * MIN_DAYS_EACH_SIDE:
        raise ValueError(f"a change test needs at least {2 * MIN_DAYS_EACH_SIDE} days, got {n_days}")
    feeder_of = np.asarray(feeder_of, dtype=np.int64)
    feeder_in = losses.input_kwh[feeder_of]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(feeder_in > 0, customers / feeder_in, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(share, axis=1)
    share = np.where(np.isfinite(share), share, np.nan_to_num(typical)[:, None])
    k, _, p = pettitt_down(share)
    after = np.arange(n_days)[None, :] > k[:, None]
    before_share, after_share = _masked_median(share, ~after), _masked_median(share, after)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(before_share > 0, 1 - after_share / before_share, 0.0)
    since = np.arange(n_days)[None, :] - k[:, None]
    just_before, just_after = (since <= 0) & (since > -LOCAL_DAYS), (since > 0) & (since <= LOCAL_DAYS)
    meter_drop = _masked_median(customers, just_before) - _masked_median(customers, just_after)
    candidate = (p < SUSPECT_P) & (drop >= SUSPECT_MIN_DROP) & (meter_drop > 0)
    feeder_loss = losses.loss_kwh
    if load_squared is not None:
        load_squared = _matrix(load_squared, "load_squared")
        if load_squared.shape != feeder_loss.shape:
            raise ValueError(f"load_squared: {feeder_loss.shape} (feeders, days), got {load_squared.shape}")
        feeder_loss = without_technical(feeder_loss, load_squared)
    loss_rise = _step_sizes(feeder_loss, feeder_of, candidate, k)
    suspect = candidate & (loss_rise >= CORROBORATION * meter_drop)
    days_after = n_days - 1 - k
    unrecorded = np.where(suspect, np.minimum(meter_drop, np.nan_to_num(loss_rise)) * days_after, 0.0)
    rank = np.full(n_customers, -1)
    ordered = np.argsort(-unrecorded, kind="stable")[: int(suspect.sum())]
    rank[ordered] = np.arange(len(ordered))
    return Suspects(suspect, k + 1, p, before_share, after_share, drop, meter_drop, loss_rise, unrecorded, rank)


def _step_sizes(loss: np.ndarray, feeder_of: np.ndarray, candidate: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Each candidate's share of its feeder's loss steps: loss = c + sum_j gamma_j * [day > k_j], fitted
    jointly per feeder (batched pseudo-inverse, no loop), so two meters stepping days apart on one
    feeder each get their own part. NaN for meters that are not candidates (or past MAX_CANDIDATES)."""
    n_feeders, n_days = loss.shape
    idx = np.flatnonzero(candidate)
    order = idx[np.argsort(feeder_of[idx], kind="stable")]
    feeders = feeder_of[order]
    first = np.searchsorted(feeders, feeders)  # position of each candidate within its feeder
    slot = np.arange(len(order)) - first
    keep = slot < MAX_CANDIDATES
    order, feeders, slot = order[keep], feeders[keep], slot[keep]
    design = np.zeros((n_feeders, n_days, MAX_CANDIDATES + 1))
    design[:, :, 0] = 1.0
    design[feeders, :, slot + 1] = (np.arange(n_days)[None, :] > k[order][:, None]).astype(np.float64)
    present = np.isfinite(loss)
    design *= present[:, :, None]
    target = np.where(present, loss, 0.0)[:, :, None]
    gamma = (np.linalg.pinv(design) @ target)[:, :, 0]
    out = np.full(len(candidate), np.nan)
    out[order] = gamma[feeders, slot + 1]
    return out


def daily_energy(counter_at_midnight: np.ndarray) -> np.ndarray:
    """Energy per day from an energy counter's readings at each day's start (meters, days + 1): the
    differences; NaN where either end is missing."""
    counter = _matrix(counter_at_midnight, "counter")
    return np.diff(counter, axis=1)
