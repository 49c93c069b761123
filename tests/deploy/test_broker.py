"""The broker as deployed: the committed mosquitto.conf is the one the tests'
Mosquitto runs with, and a real Mosquitto running it (on loopback) on the
dynamic-security file broker-init rebuilds from the registry keeps devices to
their own topics, over plain MQTT and over TLS; broker-init refuses weak secrets."""

import json
import os
import time
from pathlib import Path

import pytest

from deploy import broker_files
from telemetry_shared import broker
from telemetry_shared.registry import DeviceNew, Registry
from tests.conftest import _require
from tests.deploy.broker_helpers import DeployedMosquitto, collect, connect, make_certificate, stop, wait_for

SERVICE_ENV = {variable: f"{service}-password-0123456789" for service, variable in
               broker_files.SERVICE_PASSWORD_ENV.items()}
DEVICE_PASSWORD = "device-secret-0123456789abcdef"


def test_committed_config_is_what_the_code_generates() -> None:
    for path, text in broker_files.committed_files().items():
        assert path.read_text() == text, f"{path} is stale: run python -m deploy.broker_files --write"
    assert not (broker_files.HERE / "mosquitto" / "acl").exists()  # no ACL file: it grants every SUBSCRIBE


def _settings_lines(text: str) -> list[str]:
    """Config lines without comments, paths, ports and the run-as user: what the broker does."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key = line.split()[0]
        out.append(key if key in ("plugin", "plugin_opt_config_file", "persistence_location", "listener", "user",
                                  "include_dir") else line)
    return out


def test_deployed_config_is_the_one_the_test_fixtures_run(tmp_path: Path) -> None:
    tests_conf = broker.mosquitto_conf(1234, tmp_path, tmp_path / "dynamic-security.json", run_as="root")
    deployed = broker_files.deployed_conf()
    assert [line for line in _settings_lines(deployed) if line not in ("include_dir",)] == \
        [line for line in _settings_lines(tests_conf) if line != "user"]
    assert "acl_file" not in deployed and "password_file" not in deployed


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    """The city-data volume's registry: two devices the API added, and one retired."""
    path = tmp_path / "city" / "registry.sqlite3"
    registry = Registry(path)
    for device_id in ("wtr-0001", "wtr-0002", "wtr-0003"):
        registry.add(DeviceNew(id=device_id, kind="water", district="bukit-bestari"),
                     credential_hash=broker.hash_password(DEVICE_PASSWORD))
    registry.update("wtr-0003", state="retired", credential_hash="")
    registry.close()
    return path


@pytest.fixture
def auth_ready(tmp_path: Path) -> Path:
    """A broker-auth volume; empty, as in a new deployment or after a restore."""
    auth = tmp_path / "mosquitto" / "auth"
    auth.mkdir(parents=True)
    return auth


def _init(auth: Path, certs: Path, registry: Path, env: dict[str, str] | None = None) -> int:
    old = dict(os.environ)
    os.environ.update(SERVICE_ENV if env is None else env)
    try:
        return broker_files.main(["--init", "--auth-dir", str(auth), "--certs-dir", str(certs),
                                  "--registry", str(registry)])
    finally:
        os.environ.clear()
        os.environ.update(old)


def _clients(auth: Path) -> dict[str, dict]:
    return {c["username"]: c for c in json.loads((auth / broker_files.DYNSEC_FILE).read_text())["clients"]}


def test_init_writes_every_service_account_and_every_device_of_the_registry(auth_ready: Path, tmp_path: Path,
                                                                          registry_path: Path, capsys) -> None:
    (auth_ready / "passwd").write_text("wtr-0009:$7$101$old$file\n")  # an older release's password file
    assert _init(auth_ready, tmp_path / "no-certs", registry_path) == 0
    assert "2 devices from the registry" in capsys.readouterr().out
    clients = _clients(auth_ready)
    for service, variable in broker_files.SERVICE_PASSWORD_ENV.items():
        for n in range(broker.MAX_SERVICE_INSTANCES):
            entry = clients[broker.service_user(service, n)]
            hashed = f"$7${entry['iterations']}${entry['salt']}${entry['password']}"
            assert broker.verify_password(SERVICE_ENV[variable], hashed)
    assert {u for u in clients if not u.startswith("svc-")} == {"wtr-0001", "wtr-0002"}  # not the retired one
    assert not (auth_ready / "passwd").exists()
    assert not (auth_ready / "listeners" / "tls.conf").exists()
    assert oct((auth_ready / broker_files.DYNSEC_FILE).stat().st_mode & 0o777) == "0o600"


def test_init_on_a_new_deployment_without_a_registry_admits_only_the_services(auth_ready: Path,
                                                                             tmp_path: Path) -> None:
    assert _init(auth_ready, tmp_path / "no-certs", tmp_path / "none" / "registry.sqlite3") == 0
    assert all(user.startswith("svc-") for user in _clients(auth_ready))
    assert not (tmp_path / "none").exists()  # no registry made where the API will make it


@pytest.mark.parametrize("bad", ["", "short", "x" * 15])
def test_init_refuses_a_missing_or_weak_service_password_and_changes_nothing(auth_ready: Path, tmp_path: Path,
                                                                            registry_path: Path, capsys,
                                                                            bad: str) -> None:
    env = dict(SERVICE_ENV, API_MQTT_PASSWORD=bad)
    assert _init(auth_ready, tmp_path / "no-certs", registry_path, env) == 1
    assert "API_MQTT_PASSWORD must be set to at least 16 characters" in capsys.readouterr().err
    assert not (auth_ready / broker_files.DYNSEC_FILE).exists()


def test_init_without_a_mode_prints_usage() -> None:
    assert broker_files.main([]) == 2


@pytest.fixture
def deployed_broker(auth_ready: Path, tmp_path: Path, registry_path: Path):
    _require("mosquitto")
    make_certificate(tmp_path / "certs")
    assert _init(auth_ready, tmp_path / "certs", registry_path) == 0
    server = DeployedMosquitto(tmp_path).start()
    yield server
    server.stop()


def test_deployed_broker_refuses_anonymous_and_wrong_passwords(deployed_broker: DeployedMosquitto) -> None:
    for user, password in ((None, None), ("wtr-0001", "wrong"), ("svc-ingest-0", "wrong"), ("nobody", "x"),
                           ("wtr-0003", DEVICE_PASSWORD)):
        client, rc = connect(deployed_broker.port, user, password)
        stop(client)
        assert rc not in (0, -1), f"{user} got in"


def test_deployed_broker_keeps_a_device_to_its_own_topics(deployed_broker: DeployedMosquitto) -> None:
    port = deployed_broker.port
    service, rc = connect(port, "svc-ingest-0", SERVICE_ENV["INGEST_MQTT_PASSWORD"])
    assert rc == 0
    received = collect(service, "city/v1/dev/+/telemetry")
    device, rc = connect(port, "wtr-0001", DEVICE_PASSWORD)
    assert rc == 0
    device.publish("city/v1/dev/wtr-0002/telemetry", b"forged", qos=1).wait_for_publish(5)
    device.publish("city/v1/dev/wtr-0001/telemetry", b"mine", qos=1).wait_for_publish(5)
    assert wait_for(lambda: ("city/v1/dev/wtr-0001/telemetry", b"mine") in received)
    time.sleep(0.3)
    assert all(payload != b"forged" for _, payload in received)
    thief = collect(device, "$share/ingest/city/v1/dev/+/telemetry")  # refused at subscribe time
    device.publish("city/v1/dev/wtr-0001/telemetry", b"again", qos=1).wait_for_publish(5)
    assert wait_for(lambda: ("city/v1/dev/wtr-0001/telemetry", b"again") in received)
    time.sleep(0.3)
    assert thief == []
    stop(device, service)


def test_tls_listener_serves_the_same_users_and_pins_client_ids(deployed_broker: DeployedMosquitto,
                                                               tmp_path: Path) -> None:
    ca = tmp_path / "certs" / "server.crt"
    tls_port = deployed_broker.tls_port
    client, rc = connect(tls_port, "wtr-0001", DEVICE_PASSWORD, ca=ca)
    assert rc == 0, "a device cannot connect over TLS"
    anonymous, anon_rc = connect(tls_port, None, None, ca=ca)
    assert anon_rc not in (0, -1)
    # wtr-0002 asks for wtr-0001's client id: with use_username_as_clientid on the TLS
    # listener too, it gets its own id and wtr-0001 stays connected.
    intruder, rc2 = connect(tls_port, "wtr-0002", DEVICE_PASSWORD, client_id="wtr-0001", ca=ca)
    assert rc2 == 0
    time.sleep(0.5)
    assert client.is_connected(), "a TLS client took over another device's session"
    stop(client, anonymous, intruder)


def test_without_a_certificate_the_broker_runs_with_no_tls_listener(auth_ready: Path, tmp_path: Path,
                                                                   registry_path: Path) -> None:
    _require("mosquitto")
    assert _init(auth_ready, tmp_path / "no-certs", registry_path) == 0
    server = DeployedMosquitto(tmp_path).start()
    try:
        client, rc = connect(server.port, "wtr-0001", DEVICE_PASSWORD)
        assert rc == 0
        stop(client)
        tls_client, tls_rc = connect(server.tls_port, "wtr-0001", DEVICE_PASSWORD, ca=None, timeout_s=1)
        assert tls_rc == -1
        stop(tls_client)
    finally:
        server.stop()
