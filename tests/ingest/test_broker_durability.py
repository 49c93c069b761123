"""The broker config the workers rely on: a durable worker that is away gets
its queue back, past stock Mosquitto's 1,000-message limit and across a
graceful broker restart; a persistence folder the broker cannot write stops
the start-up with a message that says so."""

import os
import pwd
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge import contract
from telemetry_shared import broker
from tests.conftest import SERVICE_PASSWORD

QUEUED = 5000  # five times stock Mosquitto's max_queued_messages


def _worker(port: int, received: list) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-ingest-0", protocol=mqtt.MQTTv5)
    client.username_pw_set("svc-ingest-0", SERVICE_PASSWORD)
    client.on_message = lambda c, u, message: received.append(message.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    return client


def test_an_absent_worker_gets_its_queue_back_across_a_broker_restart(make_mosquitto):
    mosquitto = make_mosquitto(users={"wtr-0001": broker.hash_password("device-secret")})
    received: list[bytes] = []
    worker = _worker(mosquitto.port, received)
    worker.subscribe(contract.TELEMETRY_SUB, qos=1)
    time.sleep(0.3)
    worker.disconnect()
    worker.loop_stop()

    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wtr-0001")
    device.username_pw_set("wtr-0001", "device-secret")
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    infos = [device.publish(contract.telemetry_topic("wtr-0001"), str(i).encode(), qos=1) for i in range(QUEUED)]
    for info in infos:
        info.wait_for_publish(10)
    device.disconnect()
    device.loop_stop()

    mosquitto.stop()  # graceful: the queue is written to the persistence folder
    mosquitto.start()
    worker = _worker(mosquitto.port, received)
    deadline = time.monotonic() + 20
    while len(received) < QUEUED and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.disconnect()
    worker.loop_stop()
    assert sorted(int(p) for p in received) == list(range(QUEUED))


def test_config_is_durable_and_bounded(tmp_path):
    conf = broker.mosquitto_conf(1883, tmp_path, tmp_path / "dynamic-security.json")
    lines = set(conf.splitlines())
    assert {"persistence true", f"autosave_interval {broker.AUTOSAVE_INTERVAL_S}",
            f"max_queued_messages {broker.MAX_QUEUED_MESSAGES}"} <= lines
    assert broker.AUTOSAVE_INTERVAL_S <= 60
    assert broker.queue_for(broker.WORKER_OUTAGE_S, broker.FLEET_MESSAGES_PER_S) <= broker.MAX_QUEUED_MESSAGES


def test_an_unwritable_persistence_folder_fails_loudly(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # As root (the container) the broker drops to another user; as anyone else it runs as us.
    user = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    account = pwd.getpwnam(user)
    if os.getuid() == 0:
        os.chown(folder, 0, 0)
    os.chmod(folder, 0o755 if os.getuid() == 0 else 0o555)
    with pytest.raises(broker.BrokerConfigError, match=f"{user}.*cannot write.*chown"):
        broker.check_persistence_dir(folder, user)
    if os.getuid() == 0:
        os.chown(folder, account.pw_uid, account.pw_gid)
    os.chmod(folder, 0o755)
    broker.check_persistence_dir(folder, user)
    with pytest.raises(broker.BrokerConfigError, match="does not exist"):
        broker.check_persistence_dir(tmp_path / "missing", user)
    with pytest.raises(broker.BrokerConfigError, match="user 'no-such-user' does not exist"):
        broker.check_persistence_dir(folder, "no-such-user")
