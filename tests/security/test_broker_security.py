"""Broker security, proven against a real Mosquitto with the platform's ACL and
password file as provisioning writes them. MQTT 3.1.1 denied publishes look
successful to the sender, so a service-account subscriber proves what arrived."""

import time

import pytest

from edge import contract
from telemetry_shared import provisioning
from telemetry_shared.registry import DeviceNew
from tests.security.support import Recorder, Stack, connect, service_subscriber, wait_for


@pytest.fixture
def stack(mosquitto, tmp_path):
    s = Stack(tmp_path, mosquitto)
    yield s
    s.close()


def add(stack: Stack, device_id: str, kind: str = "water") -> str:
    issued = stack.provisioner.add(DeviceNew(id=device_id, kind=kind, district="bukit-bestari"))
    return issued.password


def test_secrets_are_random_and_stored_only_as_hashes(stack):
    passwords = [add(stack, f"wtr-{i:04d}") for i in range(3)]
    assert len(set(passwords)) == 3
    assert all(len(p) >= 22 for p in passwords)  # token_urlsafe(24): 192 bits, >= 128 required
    passwd = stack.mosquitto.passwd.read_text()
    registry_file = stack.settings.registry_file
    db = registry_file.read_bytes() + registry_file.with_name(registry_file.name + "-wal").read_bytes()
    for i, password in enumerate(passwords):
        assert password not in passwd and password.encode() not in db
        assert f"wtr-{i:04d}:$7$" in passwd
    assert "svc-ingest-0:$7$" in passwd  # the service accounts survive the rewrite


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
    watcher = service_subscriber(stack.mosquitto.port)
    watcher.subscribe(contract.DEVICE_PREFIX + "#")
    device_a = connect(stack.mosquitto.port, "wtr-000a", a)
    assert device_a.accepted and connect(stack.mosquitto.port, "wtr-000b", b).accepted
    forged = b'{"forged":true}'
    device_a.publish(contract.telemetry_topic("wtr-000b"), forged)
    device_a.publish(contract.status_topic("wtr-000b"), forged, retain=True)
    device_a.publish(contract.config_topic("wtr-000b"), forged, retain=True)
    device_a.publish(contract.telemetry_topic("wtr-000a"), b"own")  # the control: its own topic arrives
    wait_for(lambda: watcher.payloads(contract.telemetry_topic("wtr-000a")))
    time.sleep(0.3)
    assert [m.payload for m in watcher.messages if m.payload == forged] == []
    watcher.stop()
    device_a.stop()


def test_device_cannot_read_another_devices_config(stack):
    a, b = add(stack, "wtr-000a"), add(stack, "wtr-000b")
    stack.provisioner.set_config("wtr-000b", 5000, 2)
    device_a = connect(stack.mosquitto.port, "wtr-000a", a)
    device_b = connect(stack.mosquitto.port, "wtr-000b", b)
    device_a.subscribe(contract.config_topic("wtr-000b"))
    device_a.subscribe(contract.DEVICE_PREFIX + "+/config")
    device_b.subscribe(contract.config_topic("wtr-000b"))
    b_config = wait_for(lambda: device_b.payloads(contract.config_topic("wtr-000b")))
    assert contract.decode_config(b_config[-1])["interval_ms"] == 5000
    own = wait_for(lambda: device_a.payloads(contract.config_topic("wtr-000a")))  # its own, via the wildcard
    assert contract.decode_config(own[-1])["interval_ms"] == provisioning.DEFAULT_INTERVAL_MS
    device_a.subscribe("#")  # nor anything else of another device: telemetry, status
    device_b.publish(contract.telemetry_topic("wtr-000b"), b"b reads")
    device_b.publish(contract.status_topic("wtr-000b"), b"b status", retain=True)
    time.sleep(0.3)
    assert device_a.payloads(contract.config_topic("wtr-000b")) == []
    assert [m.topic for m in device_a.messages if "wtr-000b" in m.topic] == []
    device_a.stop()
    device_b.stop()


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


def test_reload_keeps_unchanged_devices_connected_and_drops_invalidated_ones(stack):
    """Every add reloads the broker: the rest of the fleet must not notice. A device whose
    password left the file is dropped by Mosquitto 2.0.11's re-check on reload alone."""
    keep_password, gone_password = add(stack, "wtr-0001"), add(stack, "wtr-0002")
    keep = connect(stack.mosquitto.port, "wtr-0001", keep_password)
    gone = connect(stack.mosquitto.port, "wtr-0002", gone_password)
    watcher = service_subscriber(stack.mosquitto.port)
    watcher.subscribe(contract.TELEMETRY_SUB)
    stack.registry.update("wtr-0002", state="retired", credential_hash="")
    started = time.monotonic()
    stack.provisioner.sync_broker()  # rewrite the file and SIGHUP, no takeover
    add(stack, "wtr-0003")  # and one more reload
    wait_for(lambda: gone.disconnected_at, timeout_s=5)
    assert gone.disconnected_at - started < 5
    time.sleep(0.5)
    keep.publish(contract.telemetry_topic("wtr-0001"), b"after reload")
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
    assert stack.link.last_status(device_id)["state"] == "online"
    return device


def test_rotation_refuses_the_old_password_and_cuts_its_session_within_5s(stack):
    old = add(stack, "pwr-0001", "power")
    device = connect_with_birth(stack, "pwr-0001", old)
    started = time.monotonic()
    issued = stack.provisioner.rotate("pwr-0001")
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert device.disconnected_at - started < 5
    assert issued.password != old and issued.cut_ms < 5000
    assert stack.link.last_status("pwr-0001")["state"] == "offline"  # not a stale "online" left retained
    assert not connect(stack.mosquitto.port, "pwr-0001", old).accepted
    fresh = connect(stack.mosquitto.port, "pwr-0001", issued.password)
    assert fresh.accepted
    fresh.stop()


def test_retired_device_is_refused_and_its_session_cut_within_5s(stack):
    password = add(stack, "trf-0001", "traffic")
    device = connect_with_birth(stack, "trf-0001", password)
    watcher = service_subscriber(stack.mosquitto.port)
    watcher.subscribe(contract.TELEMETRY_SUB)
    started = time.monotonic()
    retired, cut_ms = stack.provisioner.retire("trf-0001")
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert device.disconnected_at - started < 5 and cut_ms < 5000
    assert retired.state == "retired" and stack.registry.get("trf-0001").state == "retired"
    assert not connect(stack.mosquitto.port, "trf-0001", password).accepted
    assert "trf-0001" not in stack.mosquitto.passwd.read_text()  # the one-time takeover password is gone too
    assert stack.link.last_status("trf-0001")["state"] == "offline"
    device.client.publish(contract.telemetry_topic("trf-0001"), b"ghost", qos=1)
    time.sleep(0.5)
    assert watcher.payloads(contract.telemetry_topic("trf-0001")) == []
    watcher.stop()
    with pytest.raises(provisioning.Conflict):
        stack.provisioner.rotate("trf-0001")


def test_reload_by_command_as_in_a_container(stack):
    """CITY_BROKER_RELOAD_COMMAND instead of a pid file: the rotation still cuts and refuses."""
    old = add(stack, "wtr-0001")
    device = connect(stack.mosquitto.port, "wtr-0001", old)
    stack.settings.broker_pid_file.write_text("not a pid")  # so only the command can reload
    stack.settings.broker_reload_command = f"kill -HUP {stack.mosquitto.proc.pid}"
    issued = stack.provisioner.rotate("wtr-0001")
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert not connect(stack.mosquitto.port, "wtr-0001", old).accepted
    assert connect(stack.mosquitto.port, "wtr-0001", issued.password).accepted


def test_broker_that_cannot_be_reloaded_is_a_clear_error(stack):
    password = add(stack, "wtr-0001")
    stack.settings.broker_pid_file.write_text("not a pid")
    with pytest.raises(provisioning.BrokerUnavailable, match="CITY_BROKER_PID_FILE"):
        stack.provisioner.rotate("wtr-0001")
    stack.settings.broker_reload_command = "false"
    with pytest.raises(provisioning.BrokerUnavailable, match="reload command failed"):
        stack.provisioner.sync_broker()
    assert connect(stack.mosquitto.port, "wtr-0001", password).accepted  # the broker never heard of the change
    stack.settings.broker_reload_command = ""
    stack.settings.broker_pid_file.write_text(str(stack.mosquitto.proc.pid))
    stack.provisioner.sync_broker()  # the next working reload must not lock the device out with a lost password
    assert connect(stack.mosquitto.port, "wtr-0001", password).accepted
    with pytest.raises(provisioning.Conflict):
        stack.provisioner.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    stack.settings.broker_pid_file.write_text("not a pid")
    with pytest.raises(provisioning.BrokerUnavailable):
        stack.provisioner.retire("wtr-0001")
    with pytest.raises(provisioning.BrokerUnavailable):
        stack.provisioner.add(DeviceNew(id="wtr-0002", kind="water", district="bukit-bestari"))
    assert stack.registry.get("wtr-0001").state == "provisioned"  # the failed retirement was undone
    assert [d.id for d in stack.registry.list()[0]] == ["wtr-0001"]  # and the failed add
    assert "wtr-0002" not in stack.mosquitto.passwd.read_text()
