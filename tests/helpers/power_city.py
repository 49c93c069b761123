"""A simulated city of feeders (fleetsim.feeders) stored as the platform stores it: meters in the registry,
feeders as networks, readings in InfluxDB. Shared by the CLI, report and Grafana tests."""

import json
from pathlib import Path

from fleetsim.feeders import FeederCity, simulate_feeders

from telemetry_shared.influx import V1Writer
from telemetry_shared.network import NetworkSpec
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.settings import get_settings

SCENARIO = json.loads((Path(__file__).resolve().parents[2] / "firmware-sim/scenarios/city.json").read_text())
DAY_MS = 86_400_000


def local_midnight_ms(utc_midnight_ms: int) -> int:
    return utc_midnight_ms - get_settings().city.utc_offset_hours * 3_600_000


def make_city(start_ms: int, days: int, **options) -> FeederCity:
    city = get_settings().city
    return simulate_feeders(start_ms=start_ms, days=days, nominal_v=city.grid.nominal_voltage_v,
                            nominal_hz=city.grid.nominal_frequency_hz, utc_offset_h=city.utc_offset_hours,
                            household_curve=SCENARIO["curves"]["household_load"],
                            commercial_curve=SCENARIO["curves"]["commercial_load"], **options)


def store(sim: FeederCity, registry: Registry, influx_url: str, db: str) -> list[str]:
    """Register every meter (kind power, districts in turn), set the feeders, write the readings; returns the
    district of each feeder."""
    slugs = get_settings().city.slugs
    districts = [slugs[f % len(slugs)] for f in range(len(sim.feeder_ids))]
    for f, transformer in enumerate(sim.transformer_ids):
        registry.add(DeviceNew(id=transformer, kind="power", district=districts[f]))
    for c, customer in enumerate(sim.customer_ids):
        registry.add(DeviceNew(id=customer, kind="power", district=districts[int(sim.feeder_of[c])]))
    for feeder in sim.topology()["feeders"]:
        registry.set_network(NetworkSpec(id=feeder["id"], utility="power", meters={
            "transformer": [feeder["transformer"]], "customer": feeder["customers"]}))
    writer = V1Writer(influx_url, db)
    lines = sim.lines(districts)
    for start in range(0, len(lines), 20_000):
        writer.write(lines[start:start + 20_000])
    writer.close()
    return districts
