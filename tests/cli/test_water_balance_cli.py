"""`city water-balance` on a simulated water network stored in a real influxd and a registry holding its
topology: leakage per DMA within +-10 % of the simulator's truth, bursts found within a day, a table,
--json, --csv and --write (the Grafana board's measurement); bad dates and an absent InfluxDB fail cleanly."""

import datetime as dt
import json

import numpy as np
import pytest
from fleetsim import waternet
from typer.testing import CliRunner

from telemetry_cli.main import app
from telemetry_shared.influx import V1Writer
from telemetry_shared.network import NetworkSpec
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.settings import get_settings

DAYS = 10
FIRST = dt.date(2026, 1, 5)


def store(net: waternet.WaterNet, registry: Registry, url: str, db: str, days: int = DAYS + 1) -> waternet.Chunk:
    """The network's meters in the registry and DMAs, and its readings in InfluxDB."""
    district = get_settings().city.slugs[0]
    for device in [*net.inlet_ids, *net.customer_ids]:
        registry.add(DeviceNew(id=device, kind="water", district=district))
    for row in np.argsort(net.parent):  # parents first
        parent = net.dma_ids[net.parent[row]] if net.parent[row] >= 0 else None
        registry.set_network(NetworkSpec(
            id=net.dma_ids[row], utility="water", parent=parent,
            meters={"inlet": [m for m, d in zip(net.inlet_ids, net.inlet_dma, strict=True) if d == row],
                    "customer": [m for m, d in zip(net.customer_ids, net.customer_dma, strict=True) if d == row]}))
    data = waternet.chunk(net, 0, days * net.samples_per_day)  # (the range and the night after it)
    writer = V1Writer(url, db)
    devices = np.array([*net.inlet_ids, *net.customer_ids])
    values = np.vstack([data.inlet_lps, data.customer_lps])
    lines = [f"water,device={devices[i]},district={district} flow_lps={values[i, j]:.5f} {data.times_ms[j]}"
             for i in range(len(devices)) for j in range(values.shape[1])]
    for start in range(0, len(lines), 50_000):
        writer.write(lines[start:start + 50_000])
    writer.close()
    return data


@pytest.fixture(scope="module")
def city(tmp_path_factory, shared_influxd):
    from telemetry_shared.influx import InfluxQL

    folder = tmp_path_factory.mktemp("water")
    db = InfluxQL(shared_influxd.url, "water_cli")
    db.create_database()
    settings = get_settings()
    offset = settings.utc_offset_hours or 0
    start = int(dt.datetime.combine(FIRST, dt.time(), dt.timezone(dt.timedelta(hours=offset))).timestamp() * 1000)
    net = waternet.plan(4, 240, DAYS + 1, seed=11, start_ms=start, utc_offset_h=offset, bursts_per_dma_per_day=0.1)
    registry = Registry(folder / "registry.sqlite3")
    data = store(net, registry, shared_influxd.url, db.db)
    registry.close()
    yield folder, shared_influxd.url, db, net, data
    db.raw('DROP DATABASE "water_cli"', method="POST")
    db.close()


@pytest.fixture
def run(city, monkeypatch):
    folder, url, db, *_ = city
    monkeypatch.setenv("CITY_DATA_DIR", str(folder))
    monkeypatch.setenv("CITY_INFLUX_URL", url)
    monkeypatch.setenv("CITY_INFLUX_DB", db.db)
    monkeypatch.setenv("CITY_LANGUAGE", "en")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, ["water-balance", *args], terminal_width=200)
    get_settings.cache_clear()


def span() -> list[str]:
    return ["--from", FIRST.isoformat(), "--to", (FIRST + dt.timedelta(days=DAYS - 1)).isoformat()]


def test_leakage_and_bursts_against_the_simulators_truth(run, city):
    *_, net, data = city
    done = run(*span(), "--json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert [row["rank"] for row in answer["dmas"]] == [1, 2, 3, 4]
    truth = data.truth_leak_lps[:, : DAYS * net.samples_per_day].mean(axis=1) * 86.4  # m3/day
    for row in answer["dmas"]:
        expected = truth[net.dma_ids.index(row["dma"])]
        assert row["leakage_m3_per_day"] == pytest.approx(expected, rel=0.10), row
        assert row["days"] == DAYS and row["nrw_pct"] > 0
    assert answer["dmas"][0]["dma"] == net.dma_ids[int(np.argmax(truth))]
    found = answer["bursts"]
    due = [b for b in net.bursts if b[1] < data.times_ms[0] + (DAYS - 1) * 86_400_000]
    assert due, "the network has bursts to find"
    for dma, start, _end, _lps in due:
        hits = [b for b in found if b["dma"] == net.dma_ids[int(dma)] and start <= b["t_ms"] <= start + 86_400_000]
        assert hits, f"burst in {net.dma_ids[int(dma)]} at {start} not found within 24 h: {found}"


def test_table_csv_and_the_grafana_measurement(run, city, tmp_path):
    _, _, db, net, _ = city
    out_csv = tmp_path / "balance.csv"
    done = run(*span(), "--csv", str(out_csv), "--write")
    assert done.exit_code == 0, done.output
    assert "Water balance per DMA" in done.stdout and net.dma_ids[0] in done.stdout and "NRW %" in done.stdout
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("dma,day_ms,system_input_m3,billed_m3") and len(lines) == 1 + 4 * DAYS
    rows = db.rows('SELECT count("real_losses_m3") FROM "water_balance" GROUP BY "dma"')
    assert len(db.series('SELECT count("real_losses_m3") FROM "water_balance" GROUP BY "dma"')) == 4, rows


def test_bad_input_fails_cleanly(run, monkeypatch, tmp_path):
    assert run("--from", "2026-13-01", "--to", "2026-01-02").exit_code == 2
    assert run("--from", "2026-01-05", "--to", "2026-01-01").exit_code == 2
    assert run("--from", "2026-01-01", "--to", "2028-01-01").exit_code == 2  # more than a year and a bit
    assert run("--from", "x" * 10_000, "--to", "2026-01-01").exit_code == 2
    monkeypatch.setenv("CITY_INFLUX_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    down = run(*span())
    assert down.exit_code == 6 and "InfluxDB" in down.output
    monkeypatch.setenv("CITY_DATA_DIR", str(tmp_path))  # a registry without DMAs
    get_settings.cache_clear()
    empty = run(*span())
    assert empty.exit_code == 2 and "city network dma" in empty.output
