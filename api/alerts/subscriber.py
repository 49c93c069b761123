"""The API's MQTT subscriber: alerts from analytics into the alert store.

It logs in as the API's service account (svc-api-0) with a durable session
(clean_start=False), so alerts published while the API was down are
delivered when it returns. paho acks a QoS 1 message after on_message
returns, which is after the store committed it: at least once, and the store
ignores replays. A malformed alert is counted and logged, never fatal.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from api.alerts.store import Alert, AlertStore
from edge import contract
from telemetry_shared.settings import Settings

log = logging.getLogger("api.alerts")

SESSION_EXPIRY_S = 24 * 3600


class AlertSubscriber:
    def __init__(self, settings: Settings, store: AlertStore,
                 on_change: Callable[[Alert, list[str]], None]):
        self.settings = settings
        self.store = store
        self.on_change = on_change
        self.counters: Counter[str] = Counter()
        self.is_connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.api_mqtt_user,
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(settings.api_mqtt_user, settings.mqtt_password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.5, 10)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("broker refused the API's alert subscriber: %s", reason_code)
            return
        client.subscribe(contract.ALERTS_SUB, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        # connected means the broker holds the subscription: an alert published from here on reaches the store
        if all(not code.is_failure for code in reason_codes):
            self.is_connected.set()
        else:
            log.error("broker refused the API's alert subscription: %s", reason_codes)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self.is_connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.counters["received"] += 1
        try:
            decoded = contract.decode_alert(message.payload)
        except contract.ContractError as exc:
            self.counters[f"rejected_{exc.reason}"] += 1
            log.warning("rejected alert on %s: %s", message.topic[:120], exc)
            return
        try:
            result = self.store.apply(decoded)
        except Exception:  # a store failure must not kill the MQTT thread; the message is logged
            self.counters["store_errors"] += 1
            log.exception("could not store alert %s", decoded["id"])
            return
        if result is None:
            self.counters["replays"] += 1
            return
        self.counters["applied"] += 1
        self.on_change(*result)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def connected(self) -> bool:
        return self.is_connected.is_set()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
