"""Broker security, proven against a real Mosquitto with the platform's
dynamic-security roles as provisioning changes them. MQTT 3.1.1 denied publishes
look successful to the sender, so a service-account subscriber proves what arrived;
a refused subscription is a failure code in the SUBACK."""

import json
import time

import paho.mqtt.client as mqtt
import pytest

from edge import contract
from telemetry_shared import broker, provisioning
from telemetry_shared.registry import DeviceNew
from tests.security.support import Recorder, Stack, connect, service_subscriber, wait_for

REFUSED = 0x80  # MQTT 3.1.1 SUBACK failure (MQTT 5: 0x80 and up, 0x87 "not authorized")


@pytest.fixture
def stack(mosquitto, tmp_path):
    s = Stack(tmp_path, mosquitto)
    yield s
    s.close()


def add(stack: Stack, device_id: str, kind: str = "water") -> str:
    issued = stack.provisioner.add(DeviceNew(id=device_id, kind=kind, district="bukit-bestari"))
    return issued.password


def watch_devices(stack: Stack) -> Recorder:
    """A service (api) subscriber to every device's telemetry and status."""
    watcher = service_subscriber(stack.mosquitto.port)
    assert watcher.subscribe(contract.TELEMETRY_SUB) == 1 and watcher.subscribe(contract.STATUS_SUB) == 1
    return watcher


def test_secrets_are_random_and_stored_only_as_hashes(stack):
    passwords = [add(stack, f"wtr-{i:04d}") for i in range(3)]
    assert len(set(passwords)) == 3
    assert all(len(p) >= 22 for p in passwords)  # token_urlsafe(24): 192 bits, >= 128 required
    saved = stack.mosquitto.dynsec.read_text()  # what the broker saved after the changes
    registry_file = stack.settings.registry_file
    db = registry_file.read_bytes() + registry_file.with_name(registry_file.name + "-wal").read_bytes()
    for password in passwords:
        assert password not in saved and password.encode() not in db
    users = {c["username"] for c in json.loads(saved)["clients"]}
    assert {"wtr-0000", "wtr-0001", "wtr-0002", "svc-ingest-0"} <= users


def test_anonymous_and_wrong_passwords_are_refused(stack):
    password = add(stack, "wtr-0001")
    assert not connect(stack.mosquitto.port, None, None, client_id="anon").accepted
    assert not connect(stack.mosquitto.port, "wtr-0001", password + "x").accepted
    assert not connect(stack.mosquitto.port, "wtr-0002", password).accepted
    good = connect(stack.mosquitto.port, "wtr-0001", password)
    assert good.accepted
    good.stop()


def test_device_cannot_publish_to_another_devices_topics(stack):
    a, b = add(stack, "wtr-000a"), add(stack, "wtr-000b")
    watcher = watch_devices(stack)
    assert watcher.subscribe(contract.DEVICE_PREFIX + "+/config") == REFUSED  # no service reads configs
    device_a = connect(stack.mosquitto.port, "wtr-000a", a)
    assert device_a.accepted and connect(stack.mosquitto.port, "wtr-000b", b).accepted
    device_b = connect(stack.mosquitto.port, "wtr-000b", b)
    assert device_b.subscribe(contract.config_topic("wtr-000b")) == 1
    forged = b'{"forged":true}'
    device_a.publish(contract.telemetry_topic("wtr-000b"), forged)
    device_a.publish(contract.status_topic("wtr-000b"), forged, retain=True)
    device_a.publish(contract.config_topic("wtr-000b"), forged, retain=True)
    device_a.publish(contract.config_topic("wtr-000a"), forged, retain=True)  # nor its own config
    device_a.publish(contract.telemetry_topic("wtr-000a"), b"own")  # the control: its own topic arrives
    wait_for(lambda: watcher.payloads(contract.telemetry_topic("wtr-000a")))
    time.sleep(0.3)
    assert [m.payload for m in watcher.messages + device_b.messages if m.payload == forged] == []
    for client in (watcher, device_a, device_b):
        client.stop()


# Everything a device could try to read beyond its own config.
STOLEN = ["$share/ingest/city/v1/dev/+/telemetry", "$share/ingest/city/v1/dev/+/status",
          "$share/analytics/city/v1/dev/+/telemetry", "$share/ingest/#", "$share/x/#", "$share/x/city/v1/dev/+/config",
          "#", "+", "+/#", "+/+/#", "city/#", "city/v1/#", "city/v1/dev/#", "city/v1/dev/+/telemetry",
          "city/v1/dev/+/status", "city/v1/dev/+/config", "city/v1/dev/+/+", "city/v1/alerts/#",
          "$SYS/#", "$SYS/broker/clients/connected", "$CONTROL/#", "$CONTROL/dynamic-security/v1/response",
          "city/v1/dev/wtr-000b/telemetry", "city/v1/dev/wtr-000b/status", "city/v1/dev/wtr-000b/config",
          "city/v1/dev/wtr-000a/#", "city/v1/dev/wtr-000a/+", "city/v1/dev/wtr-000a/telemetry",
          "city/v1/dev/wtr-000a/status", "$share/ingest/city/v1/dev/wtr-000a/config"]


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["mqtt311", "mqtt5"])
def test_device_is_refused_every_other_subscription_at_subscribe_time(stack, protocol):
    a, b = add(stack, "wtr-000a"), add(stack, "wtr-000b")
    stack.provisioner.set_config("wtr-000b", 5000, 2)
    device_a = Recorder(stack.mosquitto.port, "wtr-000a", a, protocol=protocol).start()
    device_b = connect(stack.mosquitto.port, "wtr-000b", b)
    codes = {topic: device_a.subscribe(topic) for topic in STOLEN}
    assert {topic: code for topic, code in codes.items() if code < REFUSED} == {}
    assert device_a.subscribe(contract.config_topic("wtr-000a")) == 1  # its own config it may read
    own = wait_for(lambda: device_a.payloads(contract.config_topic("wtr-000a")))
    assert contract.decode_config(own[-1])["interval_ms"] == provisioning.DEFAULT_INTERVAL_MS
    device_b.publish(contract.telemetry_topic("wtr-000b"), b"b reads")
    device_b.publish(contract.status_topic("wtr-000b"), b"b status", retain=True)
    time.sleep(0.3)
    assert [m.topic for m in device_a.messages if m.topic != contract.config_topic("wtr-000a")] == []
    device_a.stop()
    device_b.stop()


def test_services_keep_their_own_rights_and_no_more(stack):
    port = stack.mosquitto.port
    ingest = Recorder(port, "svc-ingest-3", "test-service-secret", protocol=mqtt.MQTTv5).start()
    analytics = Recorder(port, "svc-analytics-3", "test-service-secret", protocol=mqtt.MQTTv5).start()
    api = Recorder(port, "svc-api-3", "test-service-secret", protocol=mqtt.MQTTv5).start()
    granted = {
        ingest: ["$share/ingest/city/v1/dev/+/telemetry", "$share/ingest/city/v1/dev/+/status",
                 contract.TELEMETRY_SUB, contract.STATUS_SUB],
        analytics: ["$share/analytics/city/v1/dev/+/telemetry", contract.TELEMETRY_SUB, "city/v1/alerts/#"],
        api: [contract.TELEMETRY_SUB, contract.STATUS_SUB, "city/v1/alerts/#", "$CONTROL/dynamic-security/v1/response"],
    }
    refused = {
        ingest: ["$share/analytics/city/v1/dev/+/telemetry", "#", "$SYS/#", "city/v1/dev/+/config",
                 "city/v1/alerts/#", "$CONTROL/dynamic-security/v1/response"],
        analytics: ["$share/ingest/city/v1/dev/+/telemetry", "#", "$SYS/#", contract.STATUS_SUB,
                    "$CONTROL/dynamic-security/v1/response"],
        api: ["$share/ingest/city/v1/dev/+/telemetry", "$share/analytics/city/v1/dev/+/telemetry", "#", "$SYS/#"],
    }
    for client, topics in granted.items():
        assert [client.subscribe(t) for t in topics] == [1] * len(topics)
    for client, topics in refused.items():
        assert all(client.subscribe(t) >= REFUSED for t in topics), topics
    for client in (ingest, analytics, api):
        client.stop()


def test_device_cannot_take_over_another_devices_client_id(stack):
    a, b = add(stack, "wtr-000a"), add(stack, "wtr-000b")
    watcher = service_subscriber(stack.mosquitto.port)
    watcher.subscribe(contract.TELEMETRY_SUB)
    device_b = connect(stack.mosquitto.port, "wtr-000b", b)
    impostor = connect(stack.mosquitto.port, "wtr-000a", a, client_id="wtr-000b")  # asks for b's client id
    assert device_b.accepted and impostor.accepted
    impostor.publish(contract.telemetry_topic("wtr-000b"), b"impostor")
    time.sleep(1.0)
    assert device_b.disconnected_at is None  # b was not kicked: the broker used a's username as client id
    device_b.publish(contract.telemetry_topic("wtr-000b"), b"still b")
    wait_for(lambda: watcher.payloads(contract.telemetry_topic("wtr-000b")))
    assert watcher.payloads(contract.telemetry_topic("wtr-000b")) == [b"still b"]
    for client in (watcher, device_b, impostor):
        client.stop()


def test_changing_one_device_leaves_the_rest_of_the_fleet_connected(stack):
    keep_password, gone_password = add(stack, "wtr-0001"), add(stack, "wtr-0002")
    keep = connect(stack.mosquitto.port, "wtr-0001", keep_password)
    gone = connect(stack.mosquitto.port, "wtr-0002", gone_password)
    watcher = service_subscriber(stack.mosquitto.port)
    watcher.subscribe(contract.TELEMETRY_SUB)
    stack.provisioner.retire("wtr-0002")
    add(stack, "wtr-0003")
    stack.provisioner.rotate("wtr-0003")
    wait_for(lambda: gone.disconnected_at, timeout_s=5)
    keep.publish(contract.telemetry_topic("wtr-0001"), b"after the changes")
    wait_for(lambda: watcher.payloads(contract.telemetry_topic("wtr-0001")))
    assert keep.disconnected_at is None
    keep.stop()
    watcher.stop()


def connect_with_birth(stack: Stack, device_id: str, password: str) -> Recorder:
    """A device as the agent connects: a retained last will "offline", then a retained birth."""
    device = Recorder(stack.mosquitto.port, device_id, password)
    device.client.will_set(contract.status_topic(device_id), contract.encode_status("offline", "0.1.0"), 1, True)
    device.start()
    assert device.accepted
    device.publish(contract.status_topic(device_id), contract.encode_status("online", "0.1.0"), retain=True)
    assert stack.link.last_status(device_id, timeout_s=5)["state"] == "online"  # generous: a loaded machine
    return device


def test_rotation_refuses_the_old_password_and_cuts_its_session_within_5s(stack):
    old = add(stack, "pwr-0001", "power")
    device = connect_with_birth(stack, "pwr-0001", old)
    started = time.monotonic()
    issued = stack.provisioner.rotate("pwr-0001")
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert device.disconnected_at - started < 5
    assert issued.password != old and issued.cut_ms < 5000
    assert stack.link.last_status("pwr-0001", timeout_s=5)["state"] == "offline"  # not a stale "online" left retained
    assert not connect(stack.mosquitto.port, "pwr-0001", old).accepted
    fresh = connect(stack.mosquitto.port, "pwr-0001", issued.password)
    assert fresh.accepted
    assert fresh.subscribe(contract.config_topic("pwr-0001")) == 1  # its rights came with it
    fresh.stop()


def test_retired_device_is_refused_its_session_cut_and_its_status_cleared(stack):
    password = add(stack, "trf-0001", "traffic")
    device = connect_with_birth(stack, "trf-0001", password)
    watcher = watch_devices(stack)
    started = time.monotonic()
    retired, cut_ms = stack.provisioner.retire("trf-0001")
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert device.disconnected_at - started < 5 and cut_ms < 5000
    assert retired.state == "retired" and stack.registry.get("trf-0001").state == "retired"
    assert not connect(stack.mosquitto.port, "trf-0001", password).accepted
    saved = json.loads(stack.mosquitto.dynsec.read_text())
    assert "trf-0001" not in {c["username"] for c in saved["clients"]}  # nor its one-time takeover password
    assert "device-trf-0001" not in {r["rolename"] for r in saved["roles"]}
    late = service_subscriber(stack.mosquitto.port)  # a subscriber that comes later gets no stale status
    assert late.subscribe(contract.status_topic("trf-0001")) == 1
    time.sleep(0.3)
    assert late.messages == []
    assert stack.link.last_status("trf-0001") is None
    device.client.publish(contract.telemetry_topic("trf-0001"), b"ghost", qos=1)
    time.sleep(0.5)
    assert watcher.payloads(contract.telemetry_topic("trf-0001")) == []
    for client in (watcher, late):
        client.stop()
    with pytest.raises(provisioning.Conflict):
        stack.provisioner.rotate("trf-0001")


def test_a_broker_that_cannot_be_reached_is_a_clear_error_and_changes_nothing(stack):
    password = add(stack, "wtr-0001")
    stack.mosquitto.stop()
    with pytest.raises(provisioning.BrokerUnavailable, match="cannot be reached"):
        stack.provisioner.rotate("wtr-0001")
    with pytest.raises(provisioning.BrokerUnavailable):
        stack.provisioner.retire("wtr-0001")
    with pytest.raises(provisioning.BrokerUnavailable):
        stack.provisioner.add(DeviceNew(id="wtr-0002", kind="water", district="bukit-bestari"))
    assert stack.registry.get("wtr-0001").state == "provisioned"  # the failed retirement changed nothing
    assert [d.id for d in stack.registry.list()[0]] == ["wtr-0001"]  # nor the failed add
    assert provisioning.broker_entries(stack.registry)["wtr-0001"] == stack.registry.get("wtr-0001").credential_hash
    stack.mosquitto.start()
    assert connect(stack.mosquitto.port, "wtr-0001", password).accepted  # the old password still works
    wait_for(lambda: stack.link.control_ready.is_set(), timeout_s=10)
    with pytest.raises(provisioning.Conflict):
        stack.provisioner.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    assert stack.provisioner.rotate("wtr-0001").cut_ms is not None  # and changes work again


def test_a_device_the_broker_lost_is_given_back_its_entry_on_rotation(stack):
    """A broker file older than the registry (say, restored apart): rotate creates the entry."""
    add(stack, "wtr-0001")
    stack.link.control([{"command": "deleteClient", "username": "wtr-0001"}])
    issued = stack.provisioner.rotate("wtr-0001")
    device = connect(stack.mosquitto.port, "wtr-0001", issued.password)
    assert device.accepted and device.subscribe(contract.config_topic("wtr-0001")) == 1
    device.stop()


def test_device_commands_never_touch_a_service_account_or_role(stack):
    for name in ("svc-api-0", "svc-ingest-1"):
        with pytest.raises(broker.BrokerConfigError):
            broker.password_command(name, "x")
        with pytest.raises(broker.BrokerConfigError):
            broker.remove_device_commands(name)
    for device_id in ("admin", "ingest", "broker-admin", "api"):  # device-<id> never names a service role
        add(stack, device_id)
    add(stack, "wtr-0001")  # the device admin's rights survived
    assert stack.provisioner.rotate("admin").cut_ms is not None
