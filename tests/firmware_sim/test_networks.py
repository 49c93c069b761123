"""The live city's DMAs and feeders (fleetsim/networks.py): ids and topology the registry accepts, meters
that read their models, and the default seed's planted events inside the history the boards show."""

import fleetsim
import numpy as np
import pytest
from fleetsim.networks import DAY_MS, NetworkConfigError, NetworkModels, anchor_ms, network_devices, plan_networks

from analytics.en50160 import Limits
from analytics.feederloss import tampering_suspects
from telemetry_shared.settings import get_settings

SCENARIO = fleetsim.load_scenario(fleetsim.DEFAULT_SCENARIO)


def test_the_plan_puts_every_meter_in_one_network_of_its_kind() -> None:
    plan = plan_networks(SCENARIO)
    kinds = {d["id"]: d["kind"] for d in plan.devices}
    seen = [m for n in plan.networks for ids in n["meters"].values() for m in ids]
    assert sorted(seen) == sorted(kinds) and len(seen) == len(set(seen))
    for network in plan.networks:
        assert {kinds[m] for ids in network["meters"].values() for m in ids} == {network["utility"]}
    assert {d["district"] for d in plan.devices} <= {d["slug"] for d in SCENARIO["districts"]}


@pytest.mark.parametrize("bad", [{"dmas": -1}, {"feeders": 1.5}, {"tamper_rate": 2}, {"history_days": 40},
                                 {"colour": 1}])
def test_a_bad_networks_section_is_refused_naming_the_key(bad: dict) -> None:
    with pytest.raises(NetworkConfigError, match=f"networks.{next(iter(bad))}"):
        plan_networks(dict(SCENARIO, networks=bad))


def test_meters_read_their_models_and_counters_only_grow() -> None:
    start = anchor_ms(SCENARIO, 1_796_000_000_000, 28)
    meters = network_devices(SCENARIO, plan_networks(SCENARIO).devices, start)
    water, power = meters[0].models.models(0)
    inlet = next(m for m in meters if m.role == "inlet")
    t = start + 5 * DAY_MS + 3 * 900_000
    assert inlet.reading(t)[1]["flow_lps"] == pytest.approx(water.inlet_lps[inlet.row, 5 * 96 + 3], abs=1e-4)
    tx = next(m for m in meters if m.role == "transformer")
    energy = [tx.reading(start + i * 600_000)[1]["energy_kwh"] for i in range(0, 36 * 144, 37)]  # into window 2
    assert np.all(np.diff(energy) > 0)


def test_the_default_seed_plants_what_every_board_panel_needs_in_the_history() -> None:
    plan = plan_networks(SCENARIO)
    models = NetworkModels(SCENARIO, plan.config, anchor_ms(SCENARIO, 1_796_000_000_000, 28))
    _, city = models.models(0)
    days = plan.config["history_days"]
    load_sq = (city.transformer_kw[:, :days * 144] ** 2).reshape(len(city.transformer_ids), days, 144).sum(2)
    found = tampering_suspects(city.transformer_kwh_day[:, :days], city.customer_kwh_day[:, :days], city.feeder_of,
                               load_sq)
    assert set(np.flatnonzero(found.rank >= 0)) == set(city.tampered)  # every tampered meter, nothing else
    assert any(first < days * 144 for _, first, _ in city.sags)  # a week fails EN 50160
    low, high = Limits.from_grid(get_settings().city.grid).voltage_band_v
    last_week = np.vstack([city.voltage, city.transformer_voltage])[:, (days - 7) * 144:days * 144]
    assert ((last_week < low) | (last_week > high)).any()  # the board's 7 days show voltages out of band
