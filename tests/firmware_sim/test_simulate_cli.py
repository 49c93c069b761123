"""`city simulate` against a local city laid out as `city up` lays it out:
Mosquitto in <data dir>/mosquitto, the registry, city.json, an ingest worker
and influxd. Readings of every kind must arrive in InfluxDB."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_cli.main import app
from telemetry_shared.influx import V1Writer
from telemetry_shared.localstack import LocalStack
from telemetry_shared.registry import Registry
from telemetry_shared.servers import Mosquitto
from telemetry_shared.settings import get_settings
from tests.conftest import ROOT, SERVICE_PASSWORD, make_settings, service_users

ENV = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'firmware-sim'}")


def city_simulate(data_dir: Path, influx_db: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = ENV | {"CITY_DATA_DIR": str(data_dir), "CITY_INFLUX_DB": influx_db, "CITY_ENVIRONMENT": "test"}
    return subprocess.run([sys.executable, "-m", "telemetry_cli.main", "simulate", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def local_city(tmp_path, shared_influxd, influx_db):
    data_dir = tmp_path / "city"
    mosquitto = Mosquitto(data_dir / "mosquitto", users=service_users()).start()
    registry = Registry(data_dir / "registry.sqlite3")
    stack = LocalStack(str(data_dir), mosquitto.port, shared_influxd.port, 1, mosquitto.proc.pid, SERVICE_PASSWORD)
    stack.save()
    settings = make_settings(tmp_path, mosquitto, shared_influxd.url, influx_db.db)
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db),
                          DeadLetters(tmp_path / "dl.sqlite3"))
    worker.start()
    yield data_dir
    worker.stop()
    registry.close()
    mosquitto.stop()


def test_simulate_runs_a_fleet_into_influxdb(local_city, influx_db):
    done = city_simulate(local_city, influx_db.db, "--devices", "200", "--hours", "2", "--speed", "0",
                         "--duration", "8", "--interval", "4", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 200
    assert set(result["stored_per_kind"]) == set(contract.KINDS)
    assert all(n > 0 for n in result["stored_per_kind"].values()), result
    assert sum(result["stored_per_kind"].values()) == result["readings"]
    labels = Path(result["labels"]).read_text().splitlines()
    assert labels[0] == "device,metric,fault,start_ms,end_ms" and len(labels) > 15
    assert all("-s0" in line.split(",")[0] for line in labels[1:])  # our tagged devices only
    fleet = local_city / "simulate" / "fleet.json"
    assert oct(fleet.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("args, message", [
    (["--devices", "0"], "--devices"),
    (["--devices", "ten"], "--devices"),
    (["--hours", "nan"], "--hours"),
    (["--speed", "-5"], "--speed"),
    (["--scenario", "/etc/passwd"], "not valid JSON"),
    (["--scenario", "/dev/zero"], "more than"),
])
def test_simulate_refuses_bad_input(local_city, monkeypatch, args, message):
    monkeypatch.setenv("CITY_DATA_DIR", str(local_city))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["simulate", *args, "--duration", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert message in result.output and not isinstance(result.exception, (TypeError, ValueError, KeyError))


def test_simulate_without_a_city_says_so(tmp_path):
    done = city_simulate(tmp_path / "nothing", "city", "--devices", "5", "--duration", "1")
    assert done.returncode == 6  # telemetry_cli/README.md: no city running is "a service is unreachable"
    assert "city up" in done.stdout
