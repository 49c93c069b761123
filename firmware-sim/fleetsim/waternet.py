"""A simulated water network with its ground truth: district meter areas (DMAs), their inlet (bulk) meters
and customer meters, and what really happens in them.

What is modelled, per DMA:
- customers' demand on a 24-hour curve in local time (low at night: legitimate night use is what the
  customers draw between 02:00 and 04:00, measured by their own meters);
- background leakage (constant, L/s) and bursts (1-4 L/s, from a start until repaired 1-8 days later);
- customer meters that under-register (a share of the meters records 3-25 % too little);
- illegal connections (unmetered draw on the demand curve, in some DMAs);
- sub-DMAs: a child DMA's inlet flow passes through its parent's inlet meters.
The inlet meters read the DMA's whole inflow (1 % noise a sample); customer meters read their own draw times
(1 - under-registration). Everything is in L/s on a regular grid of `step_ms` from `start_ms`.

Ground truth (`truth_*`): real losses (leakage: background + bursts) and apparent losses (metering
errors + illegal use) per DMA and sample; `bursts` lists each burst (dma row, start, end, L/s).

`chunk(net, first, count)` gives samples [first, first + count) of every meter: a year for 50,000 meters
is made a few days at a time with bounded memory. The same (seed, first, count) gives the same chunk.
"""

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000
# Demand by local hour, mean 1.0: a quiet night (~0.15 of the mean), morning and evening peaks.
DEMAND = np.array([0.25, 0.18, 0.15, 0.15, 0.2, 0.55, 1.45, 1.8, 1.55, 1.25, 1.15, 1.15,
                   1.25, 1.15, 1.05, 1.05, 1.2, 1.55, 1.75, 1.6, 1.3, 0.95, 0.6, 0.37])
DEMAND = DEMAND / DEMAND.mean()


@dataclass(frozen=True)
class WaterNet:
    dma_ids: list[str]
    parent: np.ndarray  # int: parent DMA row, -1 none
    inlet_ids: list[str]
    inlet_dma: np.ndarray  # int: DMA row of each inlet meter
    inlet_share: np.ndarray  # share of its DMA's inflow through each inlet (sums to 1 per DMA)
    customer_ids: list[str]
    customer_dma: np.ndarray  # int: DMA row of each customer meter (sorted)
    demand_lps: np.ndarray  # mean true draw of each customer, L/s
    under_registration: np.ndarray  # fraction of its draw a customer meter misses (0 for most)
    background_lps: np.ndarray  # per DMA
    illegal_lps: np.ndarray  # per DMA: mean unmetered draw of illegal connections
    bursts: np.ndarray  # rows (dma row, start_ms, end_ms, lps)
    start_ms: int
    step_ms: int
    utc_offset_h: float
    seed: int

    @property
    def samples_per_day(self) -> int:
        return DAY_MS // self.step_ms


def plan(n_dmas: int, n_customers: int, days: int, seed: int = 1, start_ms: int = 1_767_225_600_000,
         step_ms: int = 900_000, utc_offset_h: float = 7.0, sub_dma_share: float = 0.1,
         bursts_per_dma_per_day: float = 1 / 60) -> WaterNet:
    """A network of `n_dmas` DMAs sharing `n_customers` customer meters, over `days` days from `start_ms`
    (best at a local midnight). Ids: dma-0001, wtr-in-0001(-b), wtr-c-000001."""
    if n_dmas < 1 or n_customers < n_dmas or days < 1 or DAY_MS % step_ms:
        raise ValueError("at least one DMA, a customer per DMA, a day, and a step that divides a day")
    rng = np.random.default_rng([seed, 0])
    dma_ids = [f"dma-{i + 1:04d}" for i in range(n_dmas)]
    # the first sub_dma_share of DMAs after the first few lie inside an earlier DMA
    parent = np.full(n_dmas, -1, dtype=np.int64)
    children = rng.choice(np.arange(1, n_dmas), size=int(sub_dma_share * (n_dmas - 1)), replace=False) \
        if n_dmas > 1 else np.array([], dtype=np.int64)
    for child in np.sort(children):
        parent[child] = rng.integers(0, child)  # an earlier DMA: never a loop
    two_inlets = rng.random(n_dmas) < 0.2
    inlet_dma = np.sort(np.concatenate([np.arange(n_dmas), np.flatnonzero(two_inlets)]))
    inlet_ids = [f"wtr-in-{d + 1:04d}" + ("-b" if i > 0 and inlet_dma[i - 1] == d else "")
                 for i, d in enumerate(inlet_dma)]
    share = np.where(two_inlets[inlet_dma], 0.5, 1.0)
    customer_dma = np.sort(np.concatenate([np.arange(n_dmas), rng.integers(0, n_dmas, n_customers - n_dmas)]))
    demand = rng.lognormal(np.log(0.007), 0.5, n_customers)  # ~0.6 m3/day a connection
    under = np.where(rng.random(n_customers) < 0.15, rng.uniform(0.03, 0.25, n_customers), 0.0)
    per_dma = np.bincount(customer_dma, weights=demand, minlength=n_dmas)
    background = per_dma * rng.uniform(0.1, 0.6, n_dmas)  # 10-60 % of the DMA's demand
    illegal = np.where(rng.random(n_dmas) < 0.25, per_dma * rng.uniform(0.01, 0.05, n_dmas), 0.0)
    n_bursts = rng.poisson(bursts_per_dma_per_day * days * n_dmas)
    b_start = start_ms + rng.integers(DAY_MS * 2, days * DAY_MS, n_bursts)  # two quiet days to learn from first
    b_end = b_start + rng.integers(DAY_MS, 8 * DAY_MS, n_bursts)  # found, located and repaired: 1-8 days
    bursts = np.column_stack([rng.integers(0, n_dmas, n_bursts), b_start, b_end,
                              rng.uniform(1.0, 4.0, n_bursts)]) if n_bursts else np.zeros((0, 4))
    return WaterNet(dma_ids, parent, inlet_ids, inlet_dma, share, [f"wtr-c-{i + 1:06d}" for i in range(n_customers)],
                    customer_dma, demand, under, background, illegal, bursts, start_ms, step_ms, utc_offset_h, seed)


@dataclass(frozen=True)
class Chunk:
    times_ms: np.ndarray  # (k,) sample start times
    inlet_lps: np.ndarray  # (inlets, k) float32: what the inlet meters read
    customer_lps: np.ndarray  # (customers, k) float32: what the customer meters read
    truth_leak_lps: np.ndarray  # (dmas, k): real losses (background + bursts)
    truth_apparent_lps: np.ndarray  # (dmas, k): apparent losses (meter under-registration + illegal use)


def chunk(net: WaterNet, first: int, count: int) -> Chunk:
    """Samples [first, first + count) of every meter, with the truth behind them."""
    rng = np.random.default_rng([net.seed, 1, first, count])
    times = net.start_ms + (first + np.arange(count, dtype=np.int64)) * net.step_ms
    hour = ((times + net.utc_offset_h * 3_600_000) % DAY_MS) / 3_600_000
    curve = np.interp(hour, np.arange(25), np.append(DEMAND, DEMAND[0])).astype(np.float32)
    noise = rng.gamma(4.0, 0.25, (len(net.customer_ids), count)).astype(np.float32)  # mean 1, draws vary
    true_draw = (net.demand_lps.astype(np.float32)[:, None] * curve[None, :]) * noise
    measured = true_draw * (1 - net.under_registration.astype(np.float32))[:, None]
    n = len(net.dma_ids)
    starts = np.searchsorted(net.customer_dma, np.arange(n))  # customers are sorted by DMA
    drawn = np.add.reduceat(true_draw, starts, axis=0)
    missed = drawn - np.add.reduceat(measured, starts, axis=0)
    leak = np.repeat(net.background_lps[:, None], count, axis=1)
    for dma, start, end, lps in net.bursts:  # a handful of bursts, not a loop per meter or sample
        leak[int(dma)] += lps * ((times >= start) & (times < end))
    illegal = net.illegal_lps[:, None] * curve[None, :]
    own = drawn + leak + illegal  # each DMA's own inflow
    inflow = _with_children(own, net.parent)
    reading = inflow[net.inlet_dma] * net.inlet_share[:, None] * rng.normal(1.0, 0.01, (len(net.inlet_ids), count))
    return Chunk(times, reading.astype(np.float32), measured, leak, missed + illegal)


def _with_children(own: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Each DMA's inflow: its own plus all its sub-DMAs' (a parent is always an earlier row: add from the last)."""
    total = own.astype(np.float64)
    for child in np.flatnonzero(parent >= 0)[::-1]:  # one step per sub-DMA (tens), not per meter or sample
        total[parent[child]] += total[child]
    return total
