"""The broker as deployed: the committed mosquitto.conf and ACL are the ones the
tests' Mosquitto runs with, and a real Mosquitto running them (on loopback)
keeps devices to their own topics, over plain MQTT and over TLS; the broker
reloads itself when the API rewrites the password file; broker-init refuses
weak secrets and keeps the devices."""

import os
import time
from pathlib import Path

import pytest

from deploy import broker_files
from telemetry_shared import broker, provisioning
from tests.conftest import _require
from tests.deploy.broker_helpers import DeployedMosquitto, collect, connect, make_certificate, stop, wait_for

SERVICE_ENV = {variable: f"{service}-password-0123456789" for service, variable in
               broker_files.SERVICE_PASSWORD_ENV.items()}
DEVICE_PASSWORD = "device-secret-0123456789abcdef"


def test_committed_config_and_acl_are_what_the_code_generates() -> None:
    for path, text in broker_files.committed_files().items():
        assert path.read_text() == text, f"{path} is stale: run python -m deploy.broker_files --write"


def _settings_lines(text: str) -> list[str]:
    """Config lines without comments, paths, ports and the run-as user: what the broker does."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key = line.split()[0]
        out.append(key if key in ("password_file", "acl_file", "persistence_location", "listener", "user",
                                  "include_dir") else line)
    return out


def test_deployed_config_is_the_one_the_test_fixtures_run(tmp_path: Path) -> None:
    tests_conf = broker.mosquitto_conf(1234, tmp_path, tmp_path / "passwd", tmp_path / "acl", run_as="root")
    deployed = broker_files.deployed_conf()
    assert [line for line in _settings_lines(deployed) if line not in ("include_dir",)] == \
        [line for line in _settings_lines(tests_conf) if line != "user"]


@pytest.fixture
def auth_ready(tmp_path: Path) -> Path:
    """broker-init's work on a fresh broker-auth volume, plus one device the API added."""
    auth = tmp_path / "mosquitto" / "auth"
    auth.mkdir(parents=True)
    provisioning.write_passwd(auth / "passwd", {"wtr-0001": broker.hash_password(DEVICE_PASSWORD),
                                                "wtr-0002": broker.hash_password(DEVICE_PASSWORD)})
    return auth


def _init(auth: Path, certs: Path, env: dict[str, str] | None = None) -> int:
    old = dict(os.environ)
    os.environ.update(SERVICE_ENV if env is None else env)
    try:
        return broker_files.main(["--init", "--auth-dir", str(auth), "--certs-dir", str(certs)])
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_init_hashes_every_service_account_and_keeps_the_devices(auth_ready: Path, tmp_path: Path) -> None:
    assert _init(auth_ready, tmp_path / "no-certs") == 0
    users = provisioning.read_passwd(auth_ready / "passwd")
    for service, variable in broker_files.SERVICE_PASSWORD_ENV.items():
        for n in range(broker.MAX_SERVICE_INSTANCES):
            assert broker.verify_password(SERVICE_ENV[variable], users[broker.service_user(service, n)])
    assert broker.verify_password(DEVICE_PASSWORD, users["wtr-0001"])
    assert not (auth_ready / "listeners" / "tls.conf").exists()
    assert oct((auth_ready / "passwd").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("bad", ["", "short", "x" * 15])
def test_init_refuses_a_missing_or_weak_service_password_and_changes_nothing(auth_ready: Path, tmp_path: Path,
                                                                            capsys, bad: str) -> None:
    before = (auth_ready / "passwd").read_text()
    env = dict(SERVICE_ENV, API_MQTT_PASSWORD=bad)
    assert _init(auth_ready, tmp_path / "no-certs", env) == 1
    assert "API_MQTT_PASSWORD must be set to at least 16 characters" in capsys.readouterr().err
    assert (auth_ready / "passwd").read_text() == before


def test_init_without_a_mode_prints_usage() -> None:
    assert broker_files.main([]) == 2


@pytest.fixture
def deployed_broker(auth_ready: Path, tmp_path: Path):
    _require("mosquitto")
    make_certificate(tmp_path / "certs")
    assert _init(auth_ready, tmp_path / "certs") == 0
    server = DeployedMosquitto(tmp_path).start()
    yield server
    server.stop()


def test_deployed_broker_refuses_anonymous_and_wrong_passwords(deployed_broker: DeployedMosquitto) -> None:
    for user, password in ((None, None), ("wtr-0001", "wrong"), ("svc-ingest-0", "wrong"), ("nobody", "x")):
        client, rc = connect(deployed_broker.port, user, password)
        stop(client)
        assert rc not in (0, -1), f"{user} got in"


def test_deployed_acl_keeps_a_device_to_its_own_topics(deployed_broker: DeployedMosquitto) -> None:
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


def test_without_a_certificate_the_broker_runs_with_no_tls_listener(auth_ready: Path, tmp_path: Path) -> None:
    _require("mosquitto")
    assert _init(auth_ready, tmp_path / "no-certs") == 0
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


def test_run_script_reloads_the_broker_when_the_api_rewrites_the_password_file(auth_ready: Path,
                                                                              tmp_path: Path) -> None:
    _require("mosquitto")
    assert _init(auth_ready, tmp_path / "no-certs") == 0
    server = DeployedMosquitto(tmp_path, run_script=True).start()
    try:
        client, rc = connect(server.port, "pwr-0009", DEVICE_PASSWORD, timeout_s=2)
        stop(client)
        assert rc not in (0, -1)
        passwd = auth_ready / "passwd"
        with provisioning.passwd_lock(passwd):  # as the API's Provisioner.sync_broker does
            users = provisioning.read_passwd(passwd) | {"pwr-0009": broker.hash_password(DEVICE_PASSWORD)}
            provisioning.write_passwd(passwd, users)
        started = time.monotonic()

        def admitted() -> bool:
            c, code = connect(server.port, "pwr-0009", DEVICE_PASSWORD, timeout_s=1)
            stop(c)
            return code == 0

        assert wait_for(admitted, timeout_s=4), "the broker did not pick up the new password file"
        assert time.monotonic() - started < 4  # the API's session cut waits 4 s at most
    finally:
        server.stop()
    assert not server.running
