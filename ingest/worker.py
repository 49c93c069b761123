"""The ingest worker: MQTT telemetry in, InfluxDB line protocol out.

Delivery: MQTT 5, QoS 1, a durable session under a fixed worker id, a shared
subscription so several workers split the stream, and the MQTT ack sent only
after InfluxDB accepted the batch (at least once). Bad input goes to the
dead-letter store with its reason; nothing takes the worker down.
"""

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.points import batch_lines
from telemetry_shared.influx import InfluxRejected, InfluxTooLarge, InfluxUnavailable, LineWriter
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

log = logging.getLogger("ingest")

SHARE_GROUP = "ingest"
SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 2000  # messages in flight from the broker to one worker
REGISTRY_CHECK_S = 1.0


@dataclass
class DeviceInfo:
    kind: str
    district: str
    state: str


class DeviceCache:
    """Registry lookups, dropped whenever the registry's version moves."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.version = -1
        self.checked = 0.0
        self.devices: dict[str, DeviceInfo] = {}

    def get(self, device_id: str) -> DeviceInfo | None:
        now = time.monotonic()
        if now - self.checked > REGISTRY_CHECK_S:
            self.checked = now
            version = self.registry.version()
            if version != self.version:
                devices, _ = self.registry.list(limit=10_000_000)
                self.devices = {d.id: DeviceInfo(d.kind, d.district, d.state) for d in devices}
                self.version = version
        return self.devices.get(device_id)


class IngestWorker:
    def __init__(self, settings: Settings, registry: Registry, writer: LineWriter, dead_letters: DeadLetters):
        self.settings = settings
        self.devices = DeviceCache(registry)
        self.registry = registry
        self.writer = writer
        self.dead_letters = dead_letters
        self.counters: Counter[str] = Counter()
        self.last_seq: dict[str, int] = {}
        self.pending: list[mqtt.MQTTMessage] = []
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.client = self._make_client()
        self.flusher = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)

    # ------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.mqtt_user, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        client.username_pw_set(s.mqtt_user, s.mqtt_password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.reconnect_delay_set(0.5, 10)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        client.subscribe(f"$share/{SHARE_GROUP}/{contract.TELEMETRY_SUB}", qos=1)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.pending.append(message)
            if len(self.pending) >= self.settings.ingest_batch_points:
                self.lock.notify()

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        # clean_start=False: a restarted worker gets its queued messages back.
        self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=False,
                            properties=props)
        self.client.loop_start()
        self.flusher.start()

    def stop(self) -> None:
        """Drain what we hold, then leave (the session stays for our return)."""
        self.stopping.set()
        with self.lock:
            self.lock.notify()
        self.flusher.join(30)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------ batches

    def _flush_loop(self) -> None:
        backoff = 0.2
        while True:
            with self.lock:
                if not self.pending and not self.stopping.is_set():
                    self.lock.wait(self.settings.ingest_batch_ms / 1000)
                messages = list(self.pending)
            if not messages:
                if self.stopping.is_set():
                    return
                continue
            try:
                self.process(messages)
            except InfluxUnavailable as exc:
                log.warning("InfluxDB unavailable, holding %d messages: %s", len(messages), exc)
                self.counters["write_retries"] += 1
                time.sleep(exc.retry_after_s or backoff)
                backoff = min(backoff * 2, 10)
                continue
            backoff = 0.2
            with self.lock:
                del self.pending[: len(messages)]
            for message in messages:
                self.client.ack(message.mid, message.qos)

    def process(self, messages: list[mqtt.MQTTMessage]) -> None:
        """Decode, validate and write a batch; raises InfluxUnavailable to be retried."""
        now_ms = int(time.time() * 1000)
        lines: list[str] = []
        rejects: list[tuple[str, str, str, str, bytes]] = []
        seen: dict[str, tuple[int, str]] = {}
        for message in messages:
            self.counters["received"] += 1
            lines.extend(self._decode(message, now_ms, rejects, seen))
        if lines:
            self._write(lines, rejects)
        self.dead_letters.add_many(rejects)
        for device_id, (t_ms, fw) in seen.items():
            self.registry.seen(device_id, t_ms, fw)

    def _decode(self, message: mqtt.MQTTMessage, now_ms: int, rejects: list, seen: dict) -> list[str]:
        topic = message.topic
        payload = message.payload
        try:
            device_id, _ = contract.parse_topic(topic)
            device = self.devices.get(device_id)
            if device is None:
                raise contract.ContractError("unknown_device", device_id)
            if device.state == "retired":
                raise contract.ContractError("retired_device", device_id)
            batch = contract.decode_telemetry(payload, device.kind, now_ms, loads=orjson.loads)
        except contract.ContractError as exc:
            self.counters[f"rejected_{exc.reason}"] += 1
            rejects.append((exc.reason, _device_of(topic), topic, exc.detail, bytes(payload)))
            return []
        for t_ms, metric, value, reason in batch.rejects:
            self.counters[f"rejected_{reason}"] += 1
            detail = orjson.dumps({"t_ms": t_ms, "metric": metric, "value": value}).decode()
            rejects.append((reason, device_id, topic, detail, bytes(payload)))
        self._count_gap(device_id, batch.seq)
        if batch.dropped:
            self.counters["device_dropped"] += batch.dropped
        if batch.samples:
            last_t = max(s[0] for s in batch.samples)
            seen[device_id] = (max(last_t, seen.get(device_id, (0, ""))[0]), batch.fw)
        self.counters["readings"] += sum(len(s[1]) for s in batch.samples)
        return batch_lines(batch, device_id, device.kind, device.district)

    def _count_gap(self, device_id: str, seq: int) -> None:
        last = self.last_seq.get(device_id)
        if last is not None and seq > last + 1:
            self.counters["sequence_gaps"] += seq - last - 1
        elif last is not None and seq == last:
            self.counters["duplicates"] += 1
        self.last_seq[device_id] = seq

    def _write(self, lines: list[str], rejects: list) -> None:
        try:
            self.writer.write(lines)
            self.counters["points_written"] += len(lines)
        except InfluxTooLarge:
            half = len(lines) // 2
            if half == 0:
                raise
            self._write(lines[:half], rejects)
            self._write(lines[half:], rejects)
        except InfluxRejected as exc:
            # A partial write keeps the good lines; do not retry it.
            self.counters["rejected_influx"] += 1
            rejects.append(("influx_rejected", "", "", str(exc)[:500], "\n".join(lines).encode()[:65536]))


def _device_of(topic: str) -> str:
    parts = topic.split("/")
    return parts[3][:64] if len(parts) > 3 else ""
