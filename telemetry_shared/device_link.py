"""One MQTT connection as the device-admin service account (svc-api-N).

It sends the broker's dynamic-security commands (add, rotate, retire a device's
broker entry), publishes retained device configs, reads a device's retained status, and
fans a device's live telemetry and status out to watchers (`city device
watch` / `commission` through the API). One connection per process: Mosquitto
uses the username as the client id, so a second connection with the same
account would kick the first.

A watcher made with an event loop (`watch(device, loop)`) gets its messages
in an asyncio queue: the MQTT thread hands each message to the loop once
(`call_soon_threadsafe`) and the loop fans it out to that device's watchers,
so hundreds of watchers cost no thread each. A watcher without a loop (a
synchronous caller such as `last_status`) gets a thread-safe queue.
"""

import asyncio
import json
import queue
import secrets
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from telemetry_shared import broker
from telemetry_shared.files import FileTooLarge, read_bounded

if TYPE_CHECKING:
    from telemetry_shared.settings import Settings

MAX_CA_FILE_BYTES = 1024 * 1024  # a CA bundle of many certificates is well under it
WATCH_QUEUE = 1000  # messages a slow watcher may lag behind before we drop (and count) for it


class LinkError(RuntimeError):
    pass


@dataclass
class LiveMessage:
    device_id: str
    leaf: str  # "telemetry" or "status"
    payload: bytes
    retained: bool
    received_ms: int


class Watch:
    """A subscription to one device's live messages: `await next()` when made with an
    event loop, `get()` otherwise."""

    def __init__(self, link: "DeviceLink", device_id: str, loop: asyncio.AbstractEventLoop | None = None):
        self.link = link
        self.device_id = device_id
        self.loop = loop
        self.queue: queue.Queue | asyncio.Queue = asyncio.Queue(WATCH_QUEUE) if loop else queue.Queue(WATCH_QUEUE)
        self.dropped = 0
        self.ended = ""  # why the watch was ended from outside (end()), else ""

    def put(self, message: LiveMessage) -> None:
        """On the watch's loop for an async watch, on any thread otherwise."""
        try:
            self.queue.put_nowait(message)
        except (queue.Full, asyncio.QueueFull):
            self.dropped += 1

    def get(self, timeout_s: float) -> LiveMessage | None:
        try:
            return self.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    async def next(self, timeout_s: float) -> LiveMessage | None:
        """The next message, or None after timeout_s or once the watch was ended."""
        if self.ended:
            return None
        try:
            message = await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None
        return None if message is _END else message

    def end(self, reason: str) -> None:
        """Stop the watcher waiting in next() (on the watch's loop): its right to watch is gone."""
        self.ended = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_END)

    def close(self) -> None:
        self.link.unwatch(self)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()  # put in an async watch's queue by end()


def _deliver(watchers: list[Watch], message: LiveMessage) -> None:
    """On an event loop: one message to its async watchers."""
    for watch in watchers:
        watch.put(message)


class _NamedServerContext(ssl.SSLContext):
    """A client context that checks the broker's certificate for one fixed name, whatever
    host was dialled: in compose the API reaches the broker as `mosquitto`, while its
    certificate names the city's MQTT host (CITY_MQTT_TLS_SERVER_NAME)."""

    server_name = ""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):  # noqa: ANN001, ANN002, ANN003
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or server_hostname, **kwargs)


def broker_tls_context(ca_file: Path, server_name: str = "") -> ssl.SSLContext:
    """Trust only this CA (PEM or DER, the one the boards pin), TLS 1.2 or newer, the name checked."""
    try:
        data = read_bounded(Path(ca_file), MAX_CA_FILE_BYTES)  # a device or a pipe named by mistake never ends
    except OSError as exc:
        raise LinkError(f"cannot read the broker's CA certificate {ca_file}: {exc.strerror}") from exc
    except FileTooLarge as exc:
        raise LinkError(f"{ca_file} is no CA certificate: {exc}") from exc
    context = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    context.server_name = server_name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cadata=data.decode() if data.lstrip().startswith(b"-----BEGIN") else data)
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise LinkError(f"{ca_file} is no CA certificate (PEM or DER): {exc}") from exc
    return context


class DeviceLink:
    def __init__(self, host: str, port: int, user: str, password: str, tls: ssl.SSLContext | None = None):
        """tls: connect over TLS with this context (production's broker takes the plugin's
        commands on its TLS listener only; see admin_link)."""
        self.host, self.port = host, port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, clean_session=True,
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.answered = threading.Event()  # a CONNACK came, accepted or not
        self.refused = ""
        self.lock = threading.Lock()
        self.watches: dict[str, set[Watch]] = {}
        self.counters: Counter[str] = Counter()
        self.control_ready = threading.Event()  # subscribed to the dynamic-security responses
        self._control_mid = -1
        self._answers: dict[str, list] = {}  # correlation token -> [event, responses]
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *args: self.control_ready.clear()

    def start(self, timeout_s: float = 10) -> "DeviceLink":
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except ssl.SSLError as exc:  # a wrong CA, name or expired certificate: say which
            raise LinkError(f"TLS to the broker at {self.host}:{self.port} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise LinkError(f"cannot reach the broker at {self.host}:{self.port}: {exc}") from exc
        self.client.loop_start()
        if not self.answered.wait(timeout_s) or not self.connected.is_set():
            self.stop()
            raise LinkError(f"the broker did not accept the device-admin account: {self.refused or 'no answer'}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            self.answered.set()
            return
        with self.lock:
            devices = list(self.watches)
        for device_id in devices:  # a clean session forgot them
            self._subscribe(device_id)
        self.control_ready.clear()
        _, self._control_mid = client.subscribe(broker.RESPONSE_TOPIC, 1)
        self.connected.set()
        self.answered.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._control_mid and not reason_codes[0].is_failure:
            self.control_ready.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == broker.RESPONSE_TOPIC:
            self._on_control_response(message.payload)
            return
        try:
            device_id, leaf = contract.parse_topic(message.topic)
        except contract.ContractError:
            self.counters["bad_topic"] += 1
            return
        live = LiveMessage(device_id, leaf, message.payload, bool(message.retain), int(time.time() * 1000))
        with self.lock:
            watchers = list(self.watches.get(device_id, ()))
        by_loop: dict[asyncio.AbstractEventLoop, list[Watch]] = {}
        for watch in watchers:
            if watch.loop is None:
                watch.put(live)
            else:
                by_loop.setdefault(watch.loop, []).append(watch)
        for loop, group in by_loop.items():  # one hand-over per loop, not per watcher
            try:
                loop.call_soon_threadsafe(_deliver, group, live)
            except RuntimeError:  # that loop is closed: its watchers are gone
                self.counters["closed_loop"] += 1

    def _subscribe(self, device_id: str) -> None:
        self.client.subscribe([(contract.telemetry_topic(device_id), 1), (contract.status_topic(device_id), 1)])

    def _on_control_response(self, payload: bytes) -> None:
        try:
            responses = json.loads(payload)["responses"]
            token = str(responses[0].get("correlationData", "")).split(":")[0]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self.counters["bad_control_response"] += 1
            return
        with self.lock:
            waiter = self._answers.get(token)
        if waiter is not None:  # else another admin's answer: every admin sees every response
            waiter[1] = responses
            waiter[0].set()

    # ------------------------------------------------------------ public

    def control(self, commands: list[dict], timeout_s: float = 10) -> list[dict]:
        """Send dynamic-security commands in one message; returns the broker's response to each,
        in order (a response with an "error" key is a command the broker refused)."""
        if not self.client.is_connected():
            raise LinkError(f"not connected to the broker at {self.host}:{self.port}")
        if not self.control_ready.wait(timeout_s):
            raise LinkError("this account may not administer the broker's dynamic security (or no connection)")
        token = secrets.token_hex(8)
        tagged = [command | {"correlationData": f"{token}:{n}"} for n, command in enumerate(commands)]
        waiter: list = [threading.Event(), None]
        with self.lock:
            self._answers[token] = waiter
        try:
            # QoS 0: the response is the acknowledgement. (At QoS 1 the response waited ~45 ms here, for
            # the PUBACK exchange to clear TCP's delayed acknowledgement.)
            self.client.publish(broker.CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=0)
            if not waiter[0].wait(timeout_s):
                raise LinkError(f"the broker did not answer dynamic-security commands within {timeout_s}s")
        finally:
            with self.lock:
                self._answers.pop(token, None)
        responses = waiter[1]
        if len(responses) != len(commands):
            raise LinkError(f"the broker answered {len(responses)} of {len(commands)} commands")
        return responses

    def publish_config(self, device_id: str, raw: bytes, timeout_s: float = 10) -> None:
        """Publish a retained QoS 1 config and wait for the broker's ack."""
        info = self.client.publish(contract.config_topic(device_id), raw, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise LinkError(f"config for {device_id} not published: {exc}") from exc
        if not info.is_published():
            raise LinkError(f"config for {device_id} not acknowledged by the broker within {timeout_s}s")

    def watch(self, device_id: str, loop: asyncio.AbstractEventLoop | None = None) -> Watch:
        """Start receiving a device's telemetry and status (the retained status first);
        with `loop`, into an asyncio queue read with `await watch.next()`."""
        watch = Watch(self, device_id, loop)
        with self.lock:
            self.watches.setdefault(device_id, set()).add(watch)
        self._subscribe(device_id)  # again for each watcher, so each gets the retained status
        return watch

    def unwatch(self, watch: Watch) -> None:
        with self.lock:
            watchers = self.watches.get(watch.device_id, set())
            watchers.discard(watch)
            if watchers:
                return
            self.watches.pop(watch.device_id, None)
        self.client.unsubscribe([contract.telemetry_topic(watch.device_id), contract.status_topic(watch.device_id)])

    def last_status(self, device_id: str, timeout_s: float = 0.5) -> dict | None:
        """The device's retained status (birth or last will), decoded, or None."""
        with self.watch(device_id) as watch:
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                message = watch.get(left)
                if message is None:
                    return None
                if message.leaf == "status":
                    try:
                        return contract.decode_status(message.payload)
                    except contract.ContractError:
                        return None
        return None


def admin_link(settings: "Settings") -> DeviceLink:
    """The device-admin link, connected, where the settings say: the plain listener, or with
    CITY_DEVICE_ADMIN_MQTT_TLS the TLS listener (production: the broker takes dynamic-security
    commands only there), checking the broker against CITY_DEVICE_CA_FILE."""
    s = settings
    if not s.device_admin_mqtt_tls:
        return DeviceLink(s.mqtt_host, s.mqtt_port, s.device_admin_mqtt_user, s.mqtt_password).start()
    tls = broker_tls_context(s.device_ca_path, s.mqtt_tls_server_name)
    return DeviceLink(s.mqtt_host, s.mqtt_tls_port, s.device_admin_mqtt_user, s.mqtt_password, tls).start()
