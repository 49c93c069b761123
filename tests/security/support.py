"""Helpers for the provisioning, security and CLI tests: a provisioner wired to a
real Mosquitto, and MQTT clients that record what really happened."""

import threading
import time
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from telemetry_shared import broker
from telemetry_shared.device_link import DeviceLink
from telemetry_shared.provisioning import Provisioner
from telemetry_shared.registry import Registry
from telemetry_shared.servers import Mosquitto
from tests.conftest import SERVICE_PASSWORD, make_settings, wait_for  # noqa: F401 - re-exported


def provisioning_settings(tmp_path: Path, mosquitto: Mosquitto, **overrides):
    """Settings for a provisioner that changes this Mosquitto's device entries as the API does."""
    return make_settings(tmp_path, mosquitto, mqtt_user=broker.service_user("api", 1),
                         device_admin_mqtt_user=broker.service_user("api", 1),
                         registry_path=tmp_path / "registry.sqlite3", **overrides)


class Stack:
    """A provisioner, its broker link and registry on a real Mosquitto."""

    def __init__(self, tmp_path: Path, mosquitto: Mosquitto):
        self.mosquitto = mosquitto
        self.settings = provisioning_settings(tmp_path, mosquitto)
        self.registry = Registry(self.settings.registry_file)
        self.link = DeviceLink("127.0.0.1", mosquitto.port, self.settings.device_admin_mqtt_user,
                               SERVICE_PASSWORD).start()
        self.provisioner = Provisioner(self.settings, self.registry, self.link.publish_config, self.link.control)

    def close(self) -> None:
        self.link.stop()
        self.registry.close()


class Recorder:
    """An MQTT client (device or service) that records connects, refusals, disconnects and messages."""

    # started and not stopped; tests/conftest.py stops them after each test, as one left running reconnects
    # (every 60-120 s) into later tests
    running: ClassVar[set["Recorder"]] = set()

    def __init__(self, port: int, username: str | None, password: str | None, client_id: str | None = None,
                 clean_session: bool = True, protocol: int = mqtt.MQTTv311, ca: Path | None = None):
        """ca: log in over TLS, trusting this CA (the broker's certificate names 127.0.0.1)."""
        session = {"clean_session": clean_session} if protocol != mqtt.MQTTv5 else {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or username or "",
                                  protocol=protocol, **session)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.reconnect_delay_set(60, 120)  # no quick automatic reconnects: we watch what the broker does
        self.port = port
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: dict[int, list[int]] = {}  # mid -> reason code values (>= 0x80: refused)
        self.connack: mqtt.ReasonCode | None = None
        self.disconnected_at: float | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        if not reason_code.is_failure:
            self.connected.set()
        self.answered.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subacks[mid] = [code.value for code in reason_codes]

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set() and self.disconnected_at is None:
            self.disconnected_at = time.monotonic()

    def start(self, timeout_s: float = 5) -> "Recorder":
        self.client.connect("127.0.0.1", self.port, keepalive=5)
        self.client.loop_start()
        self.running.add(self)
        self.answered.wait(timeout_s)
        return self

    @property
    def accepted(self) -> bool:
        return self.connected.is_set()

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1 and wait for the SUBACK; returns its code (1: granted, >= 0x80: refused)."""
        result, mid = self.client.subscribe(topic, 1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        wait_for(lambda: mid in self.subacks, timeout_s=5)
        return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.messages if m.topic == topic]

    def stop(self) -> None:
        self.running.discard(self)
        self.client.disconnect()
        self.client.loop_stop()


def connect(port: int, username: str | None, password: str | None, client_id: str | None = None) -> Recorder:
    return Recorder(port, username, password, client_id).start()


def service_subscriber(port: int, service: str = "api") -> Recorder:
    user = broker.service_user(service, 2)  # instance 2: never the same client id as the code under test
    recorder = connect(port, user, SERVICE_PASSWORD)
    assert recorder.accepted, recorder.connack
    return recorder
