"""The firmware over TLS, under the real `micropython` binary (mbedTLS) against a
real Mosquitto with a TLS listener: it connects with the CA pinned from its
flash and its readings arrive unchanged; with a wrong CA, an expired
certificate or a wrong host name it refuses to talk, says why in its log, and
once the broker is fixed reports the reason in its birth message."""

import shutil
import time
from pathlib import Path

import pytest

from edge import contract
from telemetry_shared import broker
from telemetry_shared.local_ca import TlsFiles, issue_server_cert, new_ca
from tests.conftest import wait_for
from tests.edge.mqtt_watch import Watcher, device_config, finish, start_agent

# A source of known values, so the test can say the readings arrived unchanged.
COUNTING_AGENT = """
import json
from edge.agent import Agent
class Counting:
    n = 0
    def read(self):
        self.n += 1
        return {"flow_lps": self.n * 0.25, "pressure_bar": 2.5}, 0
config = json.load(open("config.json"))
agent = Agent(config, Counting())
agent.run(None, %d)
print("link", agent.client.tls)
"""


def run_counting_agent(micropython_bin: str, flash: Path, config: dict, duration_ms: int):
    return start_agent(micropython_bin, flash, config, duration_ms, script=COUNTING_AGENT)


def tls_config(device: str, port: int, secret: str, **extra) -> dict:
    return device_config(device, "water", port, secret, ca_path="ca.der", server_hostname="localhost",
                         interval_ms=200, batch_size=2, backoff_max_ms=800) | extra


def test_device_speaks_tls_with_its_pinned_ca_and_readings_arrive_unchanged(micropython_bin, edge_dir,
                                                                              make_mosquitto, local_ca):
    secret = broker.new_secret()
    device = "wtr-tls-0001"
    mosquitto = make_mosquitto(users={device: broker.hash_password(secret)},
                               tls=(local_ca.server_crt, local_ca.server_key))
    shutil.copyfile(local_ca.ca_crt, edge_dir / "ca.pem")  # PEM on flash works too: converted on the device
    watch = Watcher(mosquitto.port, [contract.telemetry_topic(device), contract.status_topic(device)]).start()
    try:
        agent = run_counting_agent(micropython_bin, edge_dir,
                                   tls_config(device, mosquitto.tls_port, secret, ca_path="ca.pem"), 3000)
        finish(agent)
        time.sleep(0.3)
    finally:
        watch.stop()
    log = (edge_dir / "agent.log").read_text()
    assert agent.returncode == 0, log
    assert "link True" in log
    values = [s[1] for a in watch.telemetry() for s in a.body["r"]]
    assert len(values) >= 8, log
    assert values == [{"flow_lps": n * 0.25, "pressure_bar": 2.5} for n in range(1, len(values) + 1)]
    birth = watch.status()[0]
    assert birth["state"] == "online" and birth["tls"] is True and "link_error" not in birth


def test_plain_mqtt_needs_an_explicit_setting(micropython_bin, edge_dir):
    config = tls_config("wtr-tls-0002", 1, "x")
    del config["ca_path"]
    agent = run_counting_agent(micropython_bin, edge_dir, config, 100)
    finish(agent)
    log = (edge_dir / "agent.log").read_text()
    assert agent.returncode != 0 and '"tls": false' in log and "ca_path" in log


@pytest.fixture(scope="module")
def bad_certs(tmp_path_factory, local_ca) -> dict[str, tuple[Path, Path]]:
    """Server certificates that a device must refuse, each (cert, key)."""
    folder = tmp_path_factory.mktemp("bad-certs")
    other = new_ca(folder / "other-ca", "Somebody else's CA")
    certs = {}
    for name, ca, hosts, dates in (
        ("wrong_ca", other, ["localhost", "127.0.0.1"], {}),
        ("expired", local_ca, ["localhost", "127.0.0.1"], {"start": "20200101000000Z", "end": "20210101000000Z"}),
        ("wrong_host", local_ca, ["broker.elsewhere.example"], {}),
    ):
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        issue_server_cert(TlsFiles(ca.folder), cert, key, hosts, **dates)
        certs[name] = (cert, key)
    return certs


@pytest.mark.parametrize("case, reason", [("wrong_ca", "tls_unknown_ca"), ("expired", "tls_expired"),
                                          ("wrong_host", "tls_bad_host")])
def test_a_bad_certificate_is_refused_and_reported_once_fixed(case, reason, bad_certs, micropython_bin, edge_dir,
                                                              make_mosquitto, local_ca):
    secret = broker.new_secret()
    device = "wtr-tls-0003"
    users = {device: broker.hash_password(secret)}
    mosquitto = make_mosquitto(users=users, tls=bad_certs[case])
    shutil.copyfile(local_ca.ca_der, edge_dir / "ca.der")
    watch = Watcher(mosquitto.port, [contract.telemetry_topic(device), contract.status_topic(device)]).start()
    agent = run_counting_agent(micropython_bin, edge_dir, tls_config(device, mosquitto.tls_port, secret), 9000)
    try:
        log = edge_dir / "agent.log"
        wait_for(lambda: log.read_text().count(reason) >= 2, timeout_s=10)  # refused, and again after a backoff
        assert watch.telemetry() == [] and watch.status() == []  # not a byte of MQTT over a bad link
        # The operator puts the right certificate in; the device comes back and says what was wrong.
        port, tls_port = mosquitto.port, mosquitto.tls_port
        watch.stop()
        mosquitto.stop()
        fixed = make_mosquitto(users=users, port=port, tls=(local_ca.server_crt, local_ca.server_key),
                               tls_port=tls_port)
        watch = Watcher(fixed.port, [contract.telemetry_topic(device), contract.status_topic(device)]).start()
        births = wait_for(lambda: [s for s in watch.status() if s["state"] == "online"], timeout_s=15)
        assert births[0]["link_error"] == reason and births[0]["tls"] is True
        wait_for(lambda: watch.telemetry(), timeout_s=5)
    finally:
        finish(agent)
        watch.stop()
    assert f"tls: {reason}" in log.read_text()
