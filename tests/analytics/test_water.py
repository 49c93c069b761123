"""The water balance and leakage per DMA against the simulator's ground truth (firmware-sim/fleetsim/waternet.py):
leakage within +-10 % per DMA, bursts of 1 L/s or more found within 24 h, the IWA identities, sub-DMAs, and
the vectorised code against a plain loop over meters and days (tests/analytics/naive_water.py)."""

import numpy as np
import pytest
from fleetsim import waternet

from analytics.water import WaterParams, dma_flows, find_bursts, rank_dmas, water_balance
from tests.analytics.naive_water import naive_balance

OFFSET_H = 7
MIDNIGHT_MS = 1_767_225_600_000 - OFFSET_H * 3_600_000  # a local midnight at UTC+7
DAY_MS = 86_400_000


def run(n_dmas: int, n_customers: int, days: int, seed: int, **plan):
    net = waternet.plan(n_dmas, n_customers, days, seed=seed, start_ms=MIDNIGHT_MS, utc_offset_h=OFFSET_H, **plan)
    data = waternet.chunk(net, 0, days * net.samples_per_day)
    flows = dma_flows(data.inlet_lps, net.inlet_dma, data.customer_lps, net.customer_dma, net.parent)
    return net, data, flows


@pytest.fixture(scope="module")
def city():
    net, data, flows = run(40, 6000, 35, seed=3, bursts_per_dma_per_day=1 / 30)
    balance = water_balance(flows, data.times_ms, net.step_ms, WaterParams(), utc_offset_h=OFFSET_H)
    return net, data, flows, balance


def _daily(values_lps: np.ndarray, net) -> np.ndarray:
    return values_lps.reshape(len(values_lps), -1, net.samples_per_day).mean(axis=2)


def test_leakage_per_dma_is_within_ten_percent_of_the_truth(city):
    net, data, _, balance = city
    truth = _daily(data.truth_leak_lps, net) * 86.4  # m3/day
    error = balance.real_losses_m3.sum(axis=1) / truth.sum(axis=1) - 1
    assert np.abs(error).max() < 0.10, np.round(error, 3)
    daily = balance.real_losses_m3 / truth - 1
    assert np.median(np.abs(daily)) < 0.05 and np.mean(np.abs(daily) < 0.10) > 0.9


def test_the_iwa_balance_adds_up_and_apparent_losses_match_the_truth(city):
    net, data, _, b = city
    np.testing.assert_allclose(b.water_losses_m3, b.system_input_m3 - b.billed_m3)
    np.testing.assert_allclose(b.real_losses_m3 + b.apparent_losses_m3, b.water_losses_m3)
    np.testing.assert_allclose(b.nrw_pct, 100 * b.nrw_m3 / b.system_input_m3)
    to_m3 = net.step_ms / 1e6
    measured = data.customer_lps.reshape(len(net.customer_ids), -1, net.samples_per_day).sum(axis=2) * to_m3
    billed = np.zeros_like(b.billed_m3)
    np.add.at(billed, net.customer_dma, measured)
    np.testing.assert_allclose(b.billed_m3, billed, rtol=1e-4)
    # SIV of each DMA (its sub-DMAs' inflow taken out) = its customers' draw + leakage + illegal use
    truth_siv = billed + (_daily(data.truth_leak_lps + data.truth_apparent_lps, net) * 86.4)
    assert np.abs(b.system_input_m3.sum(axis=1) / truth_siv.sum(axis=1) - 1).max() < 0.01
    apparent = _daily(data.truth_apparent_lps, net).sum(axis=1) * 86.4
    off = np.abs(b.apparent_losses_m3.sum(axis=1) - apparent) / truth_siv.sum(axis=1)
    assert off.max() < 0.03 and np.median(off) < 0.01, np.round(off, 3)  # in % of the system input volume
    assert (net.parent >= 0).any(), "the city has sub-DMAs"


def test_bursts_of_one_litre_a_second_or_more_are_found_within_a_day(city):
    net, data, flows, _ = city
    found = find_bursts(flows, data.times_ms, net.step_ms, WaterParams())
    bursts = net.bursts[net.bursts[:, 1] < data.times_ms[-1] - DAY_MS]  # a day left to find it
    assert len(bursts) >= 20 and (bursts[:, 3] >= 1.0).all()
    delays = []
    for dma, start, _end, _lps in bursts:
        hits = found.t_ms[(found.dma == dma) & (found.t_ms >= start) & (found.t_ms <= start + DAY_MS)]
        delays.append((hits.min() - start) / 3_600_000 if len(hits) else np.inf)
    assert max(delays) <= 24, f"missed or late (hours): {np.round(delays, 1)}"
    assert np.median(delays) <= 2
    starts = net.bursts[:, [0, 1]]
    true_hits = [((starts[:, 0] == d) & (t >= starts[:, 1]) & (t <= starts[:, 1] + DAY_MS)).any()
                 for d, t in zip(found.dma, found.t_ms, strict=True)]
    assert np.mean(true_hits) >= 0.9, f"{len(found.dma) - sum(true_hits)} of {len(found.dma)} findings are no burst"


def test_the_ranking_puts_the_leakiest_dma_first(city):
    net, data, _, balance = city
    order = rank_dmas(balance, np.bincount(net.customer_dma, minlength=len(net.dma_ids)))
    truth = data.truth_leak_lps.mean(axis=1)
    assert order[0] == np.argmax(truth) and sorted(order) == list(range(len(net.dma_ids)))
    top = set(np.argsort(-truth)[:5])
    assert len(top & set(order[:5])) >= 4


def test_the_vectorised_balance_equals_a_plain_loop():
    net, data, flows = run(5, 60, 3, seed=5)
    inlets = data.inlet_lps.astype(np.float64)
    inlets[0, 10:20] = np.nan  # an inlet meter silent for 2.5 hours
    customers = data.customer_lps.copy()
    customers[3, 100:] = np.nan  # a customer meter gone
    flows = dma_flows(inlets, net.inlet_dma, customers, net.customer_dma, net.parent)
    fast = water_balance(flows, data.times_ms, net.step_ms, WaterParams(), utc_offset_h=OFFSET_H)
    slow = naive_balance(inlets, net.inlet_dma, customers, net.customer_dma, net.parent, data.times_ms,
                         net.step_ms, OFFSET_H, (2, 4))
    for name, values in slow.items():
        np.testing.assert_allclose(getattr(fast, name), values, rtol=1e-5, atol=1e-6, err_msg=name)
    assert list(fast.day_ms) == [MIDNIGHT_MS + i * DAY_MS for i in range(3)]


def test_edge_cases_by_name():
    net, data, _ = run(2, 4, 2, seed=1)
    params = WaterParams()
    nothing = np.full_like(data.inlet_lps, np.nan)
    flows = dma_flows(nothing, net.inlet_dma, data.customer_lps, net.customer_dma, net.parent)
    empty = water_balance(flows, data.times_ms, net.step_ms, params, utc_offset_h=OFFSET_H)
    assert np.isnan(empty.system_input_m3).all() and np.isnan(empty.nrw_pct).all()
    assert list(rank_dmas(empty)) == [0, 1]
    one = dma_flows(data.inlet_lps[:, :1], net.inlet_dma, data.customer_lps[:, :1], net.customer_dma, net.parent)
    single = water_balance(one, data.times_ms[:1], net.step_ms, params, utc_offset_h=OFFSET_H)
    assert single.system_input_m3.shape == (2, 1) and np.isnan(single.night_flow_lps).all()  # midnight: no night
    assert len(find_bursts(one, data.times_ms[:1], net.step_ms, params).dma) == 0
    with pytest.raises(ValueError):
        water_balance(flows, data.times_ms[:5], net.step_ms, params)
    with pytest.raises(ValueError):
        WaterParams(night_window_h=(4, 2))
