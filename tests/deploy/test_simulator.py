"""deploy/simulator.py against a live API and a real Mosquitto: the simulated fleet
is registered as a technician would register devices, keeps its devices across
restarts, and its devices' telemetry reaches the broker under their own logins."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy import simulator
from telemetry_cli.device_api import ApiError, DeviceApi
from tests.api.harness import start_api
from tests.conftest import SERVICE_PASSWORD, make_settings
from tests.deploy.broker_helpers import collect, connect, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live(tmp_path, mosquitto, shared_influxd, influx_db):
    # The API changes the broker's device entries over MQTT, as in the deployment.
    settings = make_settings(tmp_path / "api", mosquitto, influx_url=shared_influxd.url, influx_db=influx_db.db,
                             api_mqtt_user="svc-api-0")
    api = start_api(settings)
    yield api, settings
    api.stop()


def test_registers_the_fleet_once_and_its_devices_publish(live, tmp_path, mosquitto) -> None:
    api_server, api_settings = live
    settings = make_settings(tmp_path / "sim", mosquitto)
    client = DeviceApi(api_server.url, api_server.keys["technician"])
    path, registered = simulator.prepare(settings, 6, 1, client)
    assert registered and oct(path.stat().st_mode & 0o777) == "0o600"
    fleet = json.loads(path.read_text())
    assert len(fleet["devices"]) == 6 and fleet["broker"] == {"host": "127.0.0.1", "port": mosquitto.port}
    listed = client.list(limit=100)
    assert {d["id"] for d in fleet["devices"]} <= {d["id"] for d in listed["data"]}

    again, registered_again = simulator.prepare(settings, 6, 1, client)  # a restarted simulator
    assert again == path and not registered_again and json.loads(path.read_text()) == fleet

    service, rc = connect(mosquitto.port, "svc-ingest-0", SERVICE_PASSWORD)
    assert rc == 0
    received = collect(service, "city/v1/dev/+/telemetry")
    run = subprocess.run([sys.executable, "-m", "fleetsim", "--fleet", str(path), "--duration", "4",
                          "--interval", "1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    ids = {d["id"] for d in fleet["devices"]}
    senders = lambda: {t.split("/")[3] for t, _ in received}  # noqa: E731
    # each device starts at its own jitter, so in 4 s most (not always all) have sent
    assert wait_for(lambda: len(senders()) >= 4, timeout_s=5), f"telemetry from {sorted(senders())}"
    assert senders() <= ids
    stop(service)
    client.close()


def test_a_lost_fleet_file_rotates_the_known_devices(live, tmp_path, mosquitto) -> None:
    api_server, _ = live
    settings = make_settings(tmp_path / "sim", mosquitto)
    client = DeviceApi(api_server.url, api_server.keys["technician"])
    path, _ = simulator.prepare(settings, 2, 1, client)
    old = json.loads(path.read_text())["devices"]
    path.unlink()
    _, registered = simulator.prepare(settings, 2, 1, client)
    new = json.loads(path.read_text())["devices"]
    assert registered and [d["id"] for d in new] == [d["id"] for d in old]
    assert all(n["password"] != o["password"] for n, o in zip(new, old, strict=True))
    time.sleep(0.5)
    device, rc = connect(mosquitto.port, new[0]["id"], new[0]["password"])
    assert rc == 0
    stop(device)
    client.close()


def test_a_key_without_the_technician_role_is_refused_clearly(live, tmp_path, mosquitto) -> None:
    api_server, _ = live
    client = DeviceApi(api_server.url, api_server.keys["operator"])
    with pytest.raises(ApiError) as refused:
        simulator.prepare(make_settings(tmp_path / "sim", mosquitto), 2, 1, client)
    assert refused.value.status == 403
    assert not simulator.fleet_path(make_settings(tmp_path / "sim", mosquitto)).exists()
    client.close()


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--devices", "0"], {}, "from 1 to 5000"),
    (["--devices", "lots"], {}, "from 1 to 5000"),
    ([], {"SIMULATOR_DEVICES": "9" * 100}, "from 1 to 5000"),
    (["--devices", "2"], {"CITY_API_TOKEN": ""}, "no API token"),
])
def test_bad_arguments_and_settings_are_refused(tmp_path, args, env, message) -> None:
    environment = {"PATH": "/usr/bin:/bin", "CITY_DATA_DIR": str(tmp_path), "CITY_ENVIRONMENT": "test",
                   "CITY_API_URL": "http://127.0.0.1:9", "CITY_API_TOKEN": "x"} | env
    done = subprocess.run([sys.executable, "-m", "deploy.simulator", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode in (1, 2) and message in done.stderr, done.stderr[-500:]


def test_in_production_the_api_adds_devices_over_tls_and_the_fleet_talks_tls(make_mosquitto, local_ca, tmp_path,
                                                                           shared_influxd, influx_db) -> None:
    """Production's broker (devices_tls_only: the plain listener admits the services only): the
    API's device admin goes over TLS, and the simulator writes a TLS fleet, checked for the
    certificate's name, whose devices' readings reach a service on the plain listener."""
    server = make_mosquitto(tls=(local_ca.server_crt, local_ca.server_key), devices_tls_only=True)
    tls = {"mqtt_tls_port": server.tls_port, "device_ca_file": local_ca.ca_crt, "mqtt_tls_server_name": "localhost"}
    api_settings = make_settings(tmp_path / "api", server, influx_url=shared_influxd.url, influx_db=influx_db.db,
                                 api_mqtt_user="svc-api-0", device_admin_mqtt_tls=True, **tls)
    api = start_api(api_settings)
    client = DeviceApi(api.url, api.keys["technician"])
    try:
        path, _ = simulator.prepare(make_settings(tmp_path / "sim", server, **tls), 3, 1, client)
    finally:
        client.close()
        api.stop()
    fleet = json.loads(path.read_text())
    assert fleet["broker"] == {"host": "127.0.0.1", "port": server.port, "tls_port": server.tls_port,
                               "ca_file": str(local_ca.ca_crt), "server_hostname": "localhost"}
    first = fleet["devices"][0]
    refused, plain_rc = connect(server.port, first["id"], first["password"])
    stop(refused)
    assert plain_rc == 135, "a simulated device logged in on the production broker's plain port"
    service, rc = connect(server.port, "svc-ingest-0", SERVICE_PASSWORD)
    assert rc == 0
    received = collect(service, "city/v1/dev/+/telemetry")
    run = subprocess.run([sys.executable, "-m", "fleetsim", "--fleet", str(path), "--duration", "4",
                          "--interval", "1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert wait_for(lambda: len({t.split("/")[3] for t, _ in received}) >= 2, timeout_s=5), run.stderr[-2000:]
    stop(service)
