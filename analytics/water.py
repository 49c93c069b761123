"""Water balance and leakage per district meter area (DMA), all DMAs and days at once.

The International Water Association's (IWA) water balance (Alegre et al., *Performance Indicators for
Water Supply Services*, IWA 2006; Lambert & Hirner, *Losses from Water Supply Systems: Standard
Terminology*, IWA 2000), per DMA and local day, in m3:

    system input volume (SIV)   = what its inlet meters measured, minus what flowed on into its sub-DMAs
    billed metered consumption  = what its customers' meters measured
    water losses                = SIV - authorised consumption (here: billed metered; unbilled authorised
                                  consumption is not metered, so it is counted in the losses)
    real losses (leakage)       = from the minimum night flow (below)
    apparent losses             = water losses - real losses (meters that under-register, illegal
                                  connections, data errors)
    non-revenue water (NRW)     = SIV - billed authorised consumption, in m3 and in % of SIV

**Minimum night flow** (MNF; Lambert, *Accounting for losses: the bursts and background estimates
concepts*, 1994; UK Water Industry Report E, *Managing Leakage*, 1994): in the city's night window
(`night_window_h` of the city profile, local time) the customers draw little, so the DMA's inflow minus
the *legitimate night use* is leakage. Our customers' meters are read every interval, so legitimate
night use is measured (their draw in the same window) rather than assumed per property. Night leakage
(L/s) times the hour-day factor (`hour_day_factor_h`: 24 h where pressure is the same day and night,
less where it rises at night; the FAVAD N1 correction) gives real losses in m3/day.

**Bursts**: the DMA's unaccounted flow (net inflow minus customers' metered flow, every interval) over
the last hour, against its median at the same time of day on the previous days; a rise of at least
`burst_jump_lps` is a new burst (a burst of 1 L/s or more is found within the hour after its first full
hour). `nightflow.py` watches single meters' minimum night flow in the live engine; this module is the
DMA-level balance behind `city water-balance` and the weekly report.

Inputs are a regular time grid (`times_ms`, one column per interval) of flows in L/s; a NaN is a
reading missing. No Python loop per meter, DMA or day.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from analytics.localtime import to_local

DAY_MS, HOUR_MS = 86_400_000, 3_600_000


@dataclass(frozen=True)
class WaterParams:
    night_window_h: tuple[int, int] = (2, 4)  # local hours [start, end): the city profile's
    hour_day_factor_h: float = 24.0  # hours a day that the night leakage rate holds (24: pressure flat)
    burst_jump_lps: float = 0.5  # a rise of the unaccounted flow that is a new burst (half the smallest burst)
    burst_window: int = 4  # intervals averaged before comparing (an hour of 15-minute readings)
    baseline_days: int = 7  # previous days whose same-time median is the usual unaccounted flow

    def __post_init__(self) -> None:
        start, end = self.night_window_h
        if not 0 <= start < end <= 24:
            raise ValueError("night_window_h: local hours [start, end) with 0 <= start < end <= 24")
        if not 0 < self.hour_day_factor_h <= 24 or self.burst_jump_lps <= 0 or self.burst_window < 1 \
                or self.baseline_days < 1:
            raise ValueError("hour_day_factor_h in (0, 24], burst_jump_lps > 0, burst_window and baseline_days >= 1")


@dataclass(frozen=True)
class DmaFlows:
    """Per DMA and interval, L/s: its net inflow (inlets minus its sub-DMAs' inlets) and its customers' metered
    flow; `customer_coverage`: the share of its customer meters that reported in each interval."""

    inflow_lps: np.ndarray  # (dmas, intervals)
    metered_lps: np.ndarray  # (dmas, intervals)
    customer_coverage: np.ndarray  # (dmas, intervals)


def membership(rows: np.ndarray, n_dmas: int, dtype: np.dtype = np.float64) -> sparse.csr_matrix:
    """A (dmas x meters) 0/1 matrix: meter j counts in DMA rows[j] (a row of -1: in none)."""
    rows = np.asarray(rows, dtype=np.int64)
    keep = rows >= 0
    return sparse.csr_matrix((np.ones(keep.sum(), dtype=dtype), (rows[keep], np.flatnonzero(keep))),
                             shape=(n_dmas, len(rows)))


def dma_flows(inlet_lps: np.ndarray, inlet_dma: np.ndarray, customer_lps: np.ndarray, customer_dma: np.ndarray,
              parent: np.ndarray) -> DmaFlows:
    """Sum the meters into their DMAs.

    inlet_lps, customer_lps: (meters, intervals) in L/s, NaN where missing. inlet_dma, customer_dma: each
    meter's DMA row. parent: each DMA's parent row (-1: none). A DMA's net inflow is NaN in an interval where
    one of its inlets (or a sub-DMA's) is missing; a missing customer reading counts as 0 and lowers coverage.
    """
    n = len(parent)
    inlets = np.asarray(inlet_lps, dtype=np.float64)
    into = membership(inlet_dma, n)
    gross = into @ np.nan_to_num(inlets)
    gap = (into @ np.isnan(inlets).astype(np.float64)) > 0
    parent = np.asarray(parent, dtype=np.int64)
    children = membership(parent, n)  # row p sums the gross inflow of p's direct sub-DMAs
    net = gross - children @ gross
    gap |= (children @ gap.astype(np.float64)) > 0
    net[gap] = np.nan
    customers = np.asarray(customer_lps)
    # the customers' block is the big one (50,000 meters): summed in its own dtype, no copy unless readings miss
    of = membership(customer_dma, n, customers.dtype)
    missing = np.isnan(customers)
    counts = np.maximum(np.asarray(of.sum(axis=1)).ravel(), 1)
    if missing.any():
        metered = of @ np.where(missing, 0, customers)
        coverage = 1 - (of @ missing.astype(customers.dtype)) / counts[:, None]
    else:
        metered = of @ customers
        coverage = np.ones(metered.shape)
    metered = metered.astype(np.float64)
    return DmaFlows(net, metered, coverage)


@dataclass(frozen=True)
class WaterBalance:
    """The IWA balance per DMA (rows) and local day (columns, starting at `day_ms`, Unix ms of local
    midnight). Volumes in m3, flows in L/s, NRW in % of SIV. NaN where the day had no inflow readings."""

    day_ms: np.ndarray
    system_input_m3: np.ndarray
    billed_m3: np.ndarray
    water_losses_m3: np.ndarray
    real_losses_m3: np.ndarray
    apparent_losses_m3: np.ndarray
    nrw_m3: np.ndarray
    nrw_pct: np.ndarray
    night_flow_lps: np.ndarray  # mean net inflow in the night window
    night_use_lps: np.ndarray  # the customers' metered flow in the same window (legitimate night use)
    leakage_lps: np.ndarray  # night_flow - night_use
    coverage: np.ndarray  # share of customer-meter readings present that day

    FIELDS = ("system_input_m3", "billed_m3", "water_losses_m3", "real_losses_m3", "apparent_losses_m3",
              "nrw_m3", "nrw_pct", "night_flow_lps", "night_use_lps", "leakage_lps", "coverage")

    def days_before(self, end_ms: int) -> "WaterBalance":
        """Only the days that start before end_ms."""
        keep = self.day_ms < end_ms
        return WaterBalance(day_ms=self.day_ms[keep], **{name: getattr(self, name)[:, keep] for name in self.FIELDS})

    def concat(self, other: "WaterBalance") -> "WaterBalance":
        """This balance followed by a later one (days of another chunk)."""
        fields = {name: np.concatenate([getattr(self, name), getattr(other, name)], axis=1) for name in self.FIELDS}
        return WaterBalance(day_ms=np.concatenate([self.day_ms, other.day_ms]), **fields)


def water_balance(flows: DmaFlows, times_ms: np.ndarray, step_ms: int, params: WaterParams,
                  zone: str = "", utc_offset_h: float = 0) -> WaterBalance:
    """The daily IWA balance of every DMA from its flows on the grid `times_ms` (intervals of `step_ms`
    starting there). Local days and the night window follow `zone` (or a fixed utc_offset_h)."""
    times = np.asarray(times_ms, dtype=np.int64)
    if times.ndim != 1 or len(times) != flows.inflow_lps.shape[1] or len(times) == 0:
        raise ValueError("times_ms: one time per interval of the flows, at least one")
    local = to_local(times, zone, utc_offset_h)
    day = local // DAY_MS
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    per_day = np.diff(np.r_[starts, len(times)])
    hour = (local % DAY_MS) / HOUR_MS
    night = (hour >= params.night_window_h[0]) & (hour < params.night_window_h[1])
    to_m3 = step_ms / 1000 / 1000  # L/s over one interval -> m3
    inflow, metered = flows.inflow_lps, flows.metered_lps
    seen = np.isfinite(inflow)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a gap in the inflow is filled with the day's mean inflow: volume = mean x intervals of the day
        siv = np.add.reduceat(np.where(seen, inflow, 0), starts, axis=1) / np.add.reduceat(seen, starts, axis=1) \
            * per_day * to_m3
        billed = np.add.reduceat(metered, starts, axis=1) * to_m3
        at_night = seen & night
        n_night = np.add.reduceat(at_night, starts, axis=1)
        night_flow = np.add.reduceat(np.where(at_night, inflow, 0), starts, axis=1) / n_night
        night_use = np.add.reduceat(np.where(at_night, metered, 0), starts, axis=1) / n_night
        coverage = np.add.reduceat(flows.customer_coverage, starts, axis=1) / per_day
    leakage = night_flow - night_use
    losses = siv - billed
    day_of = np.repeat(np.arange(len(starts)), per_day)
    after_night = hour >= params.night_window_h[1]
    rate = _daily_leakage(inflow - metered, leakage, day_of, starts, after_night)
    real = rate * 86.4 * params.hour_day_factor_h / 24  # L/s -> m3/day (86,400 s / 1,000 L)
    with np.errstate(invalid="ignore", divide="ignore"):
        nrw_pct = np.where(siv > 0, 100 * losses / siv, np.nan)
    day_ms = times[starts] - (local[starts] - day[starts] * DAY_MS)  # local midnight, as Unix ms
    return WaterBalance(day_ms, siv, billed, losses, real, losses - real, losses, nrw_pct, night_flow, night_use,
                        leakage, coverage)


def _daily_leakage(excess: np.ndarray, night_lps: np.ndarray, day_of: np.ndarray, starts: np.ndarray,
                   after_night: np.ndarray) -> np.ndarray:
    """The mean leakage rate of each day, L/s. A day's night measures its leakage up to the end of the night
    window; the next night measures where it went. Between them the rate steps once (a burst, a repair) at
    the interval that best splits the unaccounted flow `excess` into the two levels (least squares, all DMAs
    and days at once): a burst at 10:00 counts from 10:00, not for the whole day. The last day keeps its rate.

    excess: (dmas, intervals) unaccounted flow; night_lps: (dmas, days); day_of: the day of each interval;
    starts: each day's first interval; after_night: intervals after the day's night window."""
    now = night_lps[:, day_of]
    following = np.c_[night_lps[:, 1:], night_lps[:, -1:]]
    following = np.where(np.isfinite(following), following, night_lps)
    later = following[:, day_of]
    # staying at `now` instead of stepping to `later` at an interval costs (e - later)^2 - (e - now)^2
    gain = np.where(after_night & np.isfinite(excess), (now - later) * (2 * excess - now - later), 0.0)
    gain = np.nan_to_num(gain)
    running = np.cumsum(gain, axis=1)
    running -= np.repeat(np.c_[np.zeros(len(running)), running[:, starts[1:] - 1]], np.diff(np.r_[starts, len(day_of)]),
                         axis=1)  # restart at each day
    best = np.maximum.reduceat(np.maximum(running, 0), starts, axis=1)
    # stay at `now` up to and including the first interval reaching the best gain (none when it is 0)
    reached = np.maximum(running, 0) >= best[:, day_of]
    first = np.where(reached, np.arange(len(day_of)), len(day_of))
    step_at = np.minimum.reduceat(first, starts, axis=1)  # first interval of the day at its best
    stays = np.arange(len(day_of))[None, :] <= step_at[:, day_of]
    stays &= (best[:, day_of] > 0) | ~after_night  # no gain: the step is at the end of the night
    rate = np.where(stays, now, later)
    return np.add.reduceat(rate, starts, axis=1) / np.diff(np.r_[starts, len(day_of)])


def rank_dmas(balance: WaterBalance, connections: np.ndarray | None = None) -> np.ndarray:
    """DMA rows in the order leak crews should visit them: most real losses (mean m3/day over the days)
    first; with `connections` (customer meters per DMA), ties broken by losses per connection. DMAs with no
    day measured come last."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a DMA without a measured day
        mean = np.nanmean(balance.real_losses_m3, axis=1)
    per_connection = mean / np.maximum(connections, 1) if connections is not None else np.zeros_like(mean)
    key = np.where(np.isnan(mean), -np.inf, mean)
    return np.lexsort((-np.nan_to_num(per_connection, nan=-np.inf), -key))


@dataclass(frozen=True)
class Bursts:
    """New bursts: DMA row, the interval's time (Unix ms, end of the hour that showed it) and the rise (L/s)."""

    dma: np.ndarray
    t_ms: np.ndarray
    rise_lps: np.ndarray


def unaccounted(flows: DmaFlows) -> np.ndarray:
    """Net inflow minus the customers' metered flow, L/s: leakage plus apparent losses, every interval."""
    return flows.inflow_lps - flows.metered_lps


def _same_time_median(values: np.ndarray, per_day: int, days_back: int) -> np.ndarray:
    """Each interval's median of the same time of day on the previous `days_back` days (NaN: none yet)."""
    n, k = values.shape
    days = -(-k // per_day)
    padded = np.full((n, (days + days_back) * per_day), np.nan)
    padded[:, days_back * per_day: days_back * per_day + k] = values
    by_day = padded.reshape(n, days + days_back, per_day)
    windows = np.lib.stride_tricks.sliding_window_view(by_day, days_back, axis=1)[:, :days]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the first day has no history
        return np.nanmedian(windows, axis=3).reshape(n, days * per_day)[:, :k]


def _shifted(flags: np.ndarray, by: int) -> np.ndarray:
    """flags moved `by` intervals later (False before the start)."""
    return np.c_[np.zeros((len(flags), by), dtype=bool), flags[:, :-by]]


def find_bursts(flows: DmaFlows, times_ms: np.ndarray, step_ms: int, params: WaterParams) -> Bursts:
    """New bursts: where each DMA's unaccounted flow, averaged over the last `burst_window` intervals, rose
    by `burst_jump_lps` or more within `burst_window` intervals beyond its usual change at that time of day
    (the median on the previous `baseline_days` days). A burst is a step: this finds one on top of a burst
    still running or right after a repair, and the usual morning rise of apparent losses is not one.
    One finding per burst: the interval where it first crosses, none within `burst_window` intervals after
    another in the same DMA. The grid must be regular (`times_ms` every `step_ms`); the first day only teaches.
    """
    excess = unaccounted(flows)
    n, k = excess.shape
    per_day = DAY_MS // step_ms
    w = params.burst_window
    csum = np.cumsum(np.nan_to_num(np.c_[np.zeros(n), excess]), axis=1)
    cnt = np.cumsum(np.c_[np.zeros(n), np.isfinite(excess)], axis=1)
    lo = np.maximum(np.arange(1, k + 1) - w, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recent = (csum[:, 1:] - csum[:, lo]) / (cnt[:, 1:] - cnt[:, lo])
    recent[:, : w - 1] = np.nan
    # the hour-over-hour change of the unaccounted flow, against its median at the same time on the previous
    # days (a burst is a step; the usual morning change of apparent losses is not; a step of a past burst is
    # on one day only, so the median does not learn it)
    step = recent - np.c_[np.full((n, w), np.nan), recent[:, :-w]]
    rise = step - _same_time_median(step, per_day, params.baseline_days)
    with np.errstate(invalid="ignore"):
        onset = rise >= params.burst_jump_lps
    new = onset & ~_shifted(onset, 1)
    # one finding per burst: none within the hour after another in the same DMA
    seen = np.cumsum(np.c_[np.zeros((n, 1)), new], axis=1)
    new &= (seen[:, :-1] - seen[:, np.maximum(np.arange(k) - w, 0)]) == 0
    rows, cols = np.nonzero(new)
    times = np.asarray(times_ms, dtype=np.int64)
    return Bursts(rows, times[cols] + step_ms, rise[rows, cols])
