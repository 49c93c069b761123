"""The feeder simulator's ground truth adds up: energy in = energy used + technical losses, a tampered
meter records less from its day on, the planted voltage and frequency events are where it says."""

import numpy as np
import pytest
from fleetsim.feeders import SLOTS_PER_DAY, simulate_feeders

CURVE = [0.4] * 6 + [0.6] * 6 + [0.7] * 6 + [1.0] * 6


def make(**options):
    return simulate_feeders(start_ms=0, nominal_v=100.0, nominal_hz=40.0, utc_offset_h=0, household_curve=CURVE,
                            commercial_curve=CURVE, **options)


def test_energy_in_is_energy_used_plus_technical_losses():
    city = make(feeders=8, days=7, meter_error=(0.0, 0.0), tamper_rate=0.1, seed=4)
    used = np.zeros_like(city.transformer_kwh_day)
    recorded = np.zeros_like(city.transformer_kwh_day)
    np.add.at(recorded, city.feeder_of, city.customer_kwh_day)
    used = recorded + city.unrecorded_kwh_day
    np.testing.assert_allclose(city.transformer_kwh_day, used + city.technical_loss_kwh_day, rtol=1e-9)
    share = city.technical_loss_kwh_day.sum(axis=1) / city.transformer_kwh_day.sum(axis=1)
    assert np.all((share > 0.02) & (share < 0.10))


def test_a_tampered_meter_records_less_from_its_day_on():
    city = make(feeders=6, days=14, tamper_rate=0.1, legit_drop_rate=0.0, seed=2)
    assert city.tampered
    for meter, (first, factor) in city.tampered.items():
        before = city.customer_kwh_day[meter, :first].mean()
        after = city.customer_kwh_day[meter, first:].mean()
        assert after < before * (factor + 0.35)


def test_planted_sags_and_frequency_events_are_in_the_readings():
    city = make(feeders=10, days=7, sag_rate=0.5, frequency_events=[(100, 6, -0.03)], seed=1)
    assert city.sags
    feeder, first, length = city.sags[0]
    assert np.all(city.voltage[city.feeder_of == feeder, first:first + length] == pytest.approx(80.0))
    assert np.all(city.frequency[100:106] == pytest.approx(40 * 0.97))
    assert city.voltage.shape == (len(city.customer_ids), 7 * SLOTS_PER_DAY)


def test_lines_are_what_ingest_stores_and_the_topology_lists_every_meter_once():
    city = make(feeders=2, days=1, customers_per_feeder=(2, 3), seed=3)
    lines = city.lines(["north", "south"])
    assert len(lines) == (len(city.customer_ids) + 2) * SLOTS_PER_DAY
    assert lines[0].startswith(f"power,device={city.transformer_ids[0]},district=north voltage_v=")
    assert ",seq=0i,hist=true " in lines[0]
    topology = city.topology()["feeders"]
    listed = [c for f in topology for c in f["customers"]]
    assert sorted(listed) == sorted(city.customer_ids) and len(topology) == 2


def test_sizes_out_of_range_are_refused():
    with pytest.raises(ValueError, match="feeders"):
        make(feeders=0)
    with pytest.raises(ValueError, match="customers_per_feeder"):
        make(customers_per_feeder=(5, 2))
