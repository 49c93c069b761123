"""The broker as deployed: the committed mosquitto.conf is the one the tests'
Mosquitto runs with, and a real Mosquitto running it (on loopback) on the
dynamic-security file broker-init rebuilds from the registry keeps devices to
their own topics; devices log in over TLS only (their valid credentials are
refused on the plain listener, which serves the service accounts alone);
broker-init refuses weak secrets and a deployment without a certificate."""

import json
import os
import time
from pathlib import Path

import pytest

from deploy import broker_files
from telemetry_shared import broker
from telemetry_shared.device_link import LinkError, admin_link
from telemetry_shared.provisioning import Provisioner
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.settings import Settings
from tests.conftest import _require, make_settings
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
    tests_conf = broker.mosquitto_conf(1234, tmp_path, tmp_path / "dynamic-security.json", run_as="root",
                                       services_only=(tmp_path / "passwd", tmp_path / "acl"))
    deployed = broker_files.deployed_conf()
    assert [line.split()[0] if line.startswith(("password_file", "acl_file")) else line
            for line in _settings_lines(deployed) if line not in ("include_dir",)] == \
        [line.split()[0] if line.startswith(("password_file", "acl_file")) else line
         for line in _settings_lines(tests_conf) if line != "user"]
    assert "per_listener_settings true" in deployed and "plugin" not in _settings_lines(deployed)


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


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """deploy/certs filled in: server.crt, server.key and ca.crt."""
    make_certificate(tmp_path / "certs")
    return tmp_path / "certs"


def _init(auth: Path, certs: Path, registry: Path, env: dict[str, str] | None = None) -> int:
    old = dict(os.environ)
    os.environ.update(SERVICE_ENV if env is None else env)
    try:
        return broker_files.main(["--init", "--auth-dir", str(auth), "--certs-dir", str(certs),
                                  "--registry", str(registry), "--ca-out", str(auth.parent / "city-ca")])
    finally:
        os.environ.clear()
        os.environ.update(old)


def _clients(auth: Path) -> dict[str, dict]:
    return {c["username"]: c for c in json.loads((auth / broker_files.DYNSEC_FILE).read_text())["clients"]}


def test_init_writes_every_service_account_and_every_device_of_the_registry(auth_ready: Path, certs: Path,
                                                                          registry_path: Path, capsys) -> None:
    (auth_ready / "passwd").write_text("wtr-0009:$7$101$old$file\n")  # an older release's password file
    assert _init(auth_ready, certs, registry_path) == 0
    assert "2 devices from the registry" in capsys.readouterr().out
    clients = _clients(auth_ready)
    for service, variable in broker_files.SERVICE_PASSWORD_ENV.items():
        for n in range(broker.MAX_SERVICE_INSTANCES):
            entry = clients[broker.service_user(service, n)]
            hashed = f"$7${entry['iterations']}${entry['salt']}${entry['password']}"
            assert broker.verify_password(SERVICE_ENV[variable], hashed)
    assert {u for u in clients if not u.startswith("svc-")} == {"wtr-0001", "wtr-0002"}  # not the retired one
    assert not (auth_ready / "passwd").exists()
    # The plain listener's files: the service accounts only, no device.
    plain_users = {line.split(":")[0] for line in (auth_ready / broker_files.SERVICES_PASSWD).read_text().splitlines()}
    assert plain_users == {u for u in clients if u.startswith("svc-")}
    assert "wtr-" not in (auth_ready / broker_files.SERVICES_ACL).read_text()
    for name in (broker_files.DYNSEC_FILE, broker_files.SERVICES_PASSWD, broker_files.SERVICES_ACL):
        assert oct((auth_ready / name).stat().st_mode & 0o777) == "0o600", name
    tls = (auth_ready / "listeners" / "tls.conf").read_text()
    assert "listener 8883" in tls and f"plugin {broker_files.IMAGE_PLUGIN}" in tls
    assert (auth_ready.parent / "city-ca" / "ca.crt").read_bytes() == (certs / "ca.crt").read_bytes()


@pytest.mark.parametrize("missing", broker_files.CERT_FILES)
def test_init_refuses_to_start_without_the_certificate_its_key_or_its_ca(auth_ready: Path, certs: Path,
                                                                        registry_path: Path, capsys,
                                                                        missing: str) -> None:
    (certs / missing).unlink()
    assert _init(auth_ready, certs, registry_path) == 1
    assert f"devices log in over TLS only: put {missing} in deploy/certs" in capsys.readouterr().err
    assert list(auth_ready.iterdir()) == []  # nothing written: the broker would not start half secured


def test_init_on_a_new_deployment_without_a_registry_admits_only_the_services(auth_ready: Path, certs: Path,
                                                                             tmp_path: Path) -> None:
    assert _init(auth_ready, certs, tmp_path / "none" / "registry.sqlite3") == 0
    assert all(user.startswith("svc-") for user in _clients(auth_ready))
    assert not (tmp_path / "none").exists()  # no registry made where the API will make it


@pytest.mark.parametrize("bad", ["", "short", "x" * 15])
def test_init_refuses_a_missing_or_weak_service_password_and_changes_nothing(auth_ready: Path, certs: Path,
                                                                            registry_path: Path, capsys,
                                                                            bad: str) -> None:
    env = dict(SERVICE_ENV, API_MQTT_PASSWORD=bad)
    assert _init(auth_ready, certs, registry_path, env) == 1
    assert "API_MQTT_PASSWORD must be set to at least 16 characters" in capsys.readouterr().err
    assert not (auth_ready / broker_files.DYNSEC_FILE).exists()


def test_init_without_a_mode_prints_usage() -> None:
    assert broker_files.main([]) == 2


@pytest.fixture
def deployed_broker(auth_ready: Path, tmp_path: Path, certs: Path, registry_path: Path):
    _require("mosquitto")
    assert _init(auth_ready, certs, registry_path) == 0
    server = DeployedMosquitto(tmp_path).start()
    yield server
    server.stop()


def test_deployed_broker_refuses_anonymous_and_wrong_passwords(deployed_broker: DeployedMosquitto) -> None:
    for user, password in ((None, None), ("wtr-0001", "wrong"), ("svc-ingest-0", "wrong"), ("nobody", "x"),
                           ("wtr-0003", DEVICE_PASSWORD)):
        client, rc = connect(deployed_broker.port, user, password)
        stop(client)
        assert rc not in (0, -1), f"{user} got in"


def test_deployed_broker_keeps_a_device_to_its_own_topics(deployed_broker: DeployedMosquitto,
                                                          certs: Path) -> None:
    service, rc = connect(deployed_broker.port, "svc-ingest-0", SERVICE_ENV["INGEST_MQTT_PASSWORD"])
    assert rc == 0
    received = collect(service, "city/v1/dev/+/telemetry")
    device, rc = connect(deployed_broker.tls_port, "wtr-0001", DEVICE_PASSWORD, ca=certs / "ca.crt")
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


def test_a_device_logs_in_over_tls_and_its_valid_credentials_are_refused_on_the_plain_port(
        deployed_broker: DeployedMosquitto, certs: Path) -> None:
    over_tls, tls_rc = connect(deployed_broker.tls_port, "wtr-0001", DEVICE_PASSWORD, ca=certs / "ca.crt")
    plain, plain_rc = connect(deployed_broker.port, "wtr-0001", DEVICE_PASSWORD)
    stop(over_tls, plain)
    assert tls_rc == 0, "a device with valid credentials cannot log in over TLS"
    assert plain_rc == 135, f"the plain listener answered {plain_rc} to a device's valid login (135: not authorised)"


def test_tls_listener_pins_client_ids(deployed_broker: DeployedMosquitto, certs: Path) -> None:
    ca = certs / "ca.crt"
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


def _api_settings(tmp_path: Path, server: DeployedMosquitto, certs: Path, **overrides) -> Settings:
    """The API's settings as compose gives them: device admin over TLS, the broker checked for its name."""
    values = {"mqtt_password": SERVICE_ENV["API_MQTT_PASSWORD"], "mqtt_tls_port": server.tls_port,
              "device_admin_mqtt_tls": True, "device_ca_file": certs / "ca.crt", "mqtt_tls_server_name": "localhost",
              "device_admin_mqtt_user": "svc-api-1", "registry_path": tmp_path / "api" / "registry.sqlite3"}
    return make_settings(tmp_path, server, **(values | overrides))


def test_services_work_in_production_and_the_api_adds_a_device_over_tls(deployed_broker: DeployedMosquitto,
                                                                      certs: Path, tmp_path: Path) -> None:
    """The services on the plain listener read and write what their roles allow; the API's
    device admin, over TLS, adds a device live, which then logs in over TLS only."""
    port, ca = deployed_broker.port, certs / "ca.crt"
    ingest, rc = connect(port, "svc-ingest-0", SERVICE_ENV["INGEST_MQTT_PASSWORD"])
    assert rc == 0
    readings = collect(ingest, "$share/ingest/city/v1/dev/+/telemetry")
    api, rc = connect(port, "svc-api-0", SERVICE_ENV["API_MQTT_PASSWORD"])
    assert rc == 0
    alerts = collect(api, "city/v1/alerts/#")
    analytics, rc = connect(port, "svc-analytics-0", SERVICE_ENV["ANALYTICS_MQTT_PASSWORD"])
    assert rc == 0
    analytics.publish("city/v1/alerts/wtr-0001", b"leak", qos=1).wait_for_publish(5)
    ingest.publish("city/v1/alerts/wtr-0001", b"forged by ingest", qos=1).wait_for_publish(5)
    assert wait_for(lambda: ("city/v1/alerts/wtr-0001", b"leak") in alerts)

    settings = _api_settings(tmp_path, deployed_broker, certs)
    link = admin_link(settings)
    registry = Registry(settings.registry_file)
    try:
        provisioner = Provisioner(settings, registry, link.publish_config, link.control)
        password = provisioner.add(DeviceNew(id="wtr-0100", kind="water", district="bukit-bestari")).password
    finally:
        link.stop()
        registry.close()
    device, tls_rc = connect(deployed_broker.tls_port, "wtr-0100", password, ca=ca)
    plain, plain_rc = connect(port, "wtr-0100", password)
    assert (tls_rc, plain_rc) == (0, 135), "a device added live must log in over TLS and be refused on plain"
    device.publish("city/v1/dev/wtr-0100/telemetry", b"first", qos=1).wait_for_publish(5)
    assert wait_for(lambda: ("city/v1/dev/wtr-0100/telemetry", b"first") in readings)
    assert ("city/v1/alerts/wtr-0001", b"forged by ingest") not in alerts
    stop(device, plain, ingest, api, analytics)


def test_the_plugin_takes_no_command_on_the_plain_listener(deployed_broker: DeployedMosquitto) -> None:
    """Why the API's device admin goes over TLS: on the plain listener its commands vanish."""
    admin, rc = connect(deployed_broker.port, "svc-api-2", SERVICE_ENV["API_MQTT_PASSWORD"])
    assert rc == 0
    answers = collect(admin, broker.RESPONSE_TOPIC)
    admin.publish(broker.CONTROL_TOPIC, json.dumps({"commands": [{"command": "listClients"}]}), qos=1)
    time.sleep(1.0)
    stop(admin)
    assert answers == []


@pytest.mark.parametrize(("override", "reason"), [
    ({"mqtt_tls_server_name": "mqtt.elsewhere.example"}, "TLS to the broker"),
    ({"device_ca_file": Path("/nonexistent/ca.crt")}, "cannot read the broker's CA certificate"),
    ({"device_ca_file": "garbage"}, "is no CA certificate"),
    ({"device_ca_file": "server.key"}, "is no CA certificate"),  # a key mistaken for the CA
    ({"device_ca_file": Path("/dev/zero")}, "is no CA certificate: .* larger than 1 MB"),  # never ends: bounded
])
def test_the_api_refuses_a_broker_it_cannot_verify(deployed_broker: DeployedMosquitto, certs: Path, tmp_path: Path,
                                                   override: dict, reason: str) -> None:
    (certs / "garbage").write_bytes(b"\x00\xff not a certificate" * 10)
    if isinstance(override.get("device_ca_file"), str):
        override = {"device_ca_file": certs / override["device_ca_file"]}
    with pytest.raises(LinkError, match=reason):
        admin_link(_api_settings(tmp_path, deployed_broker, certs, **override))


@pytest.mark.parametrize("name", ["mqtt city", "-mqtt", "mqtt\x00.example", "x" * 254, "mqtt.example/"])
def test_a_malformed_server_name_is_refused_at_start(name: str) -> None:
    with pytest.raises(ValueError, match="mqtt_tls_server_name"):
        Settings(mqtt_tls_server_name=name)
