"""The ingest worker: MQTT telemetry in, InfluxDB line protocol out.

Delivery: MQTT 5, QoS 1, a durable session under a fixed worker identity
(clean_start=False and a session expiry, so a restarted worker gets its queue
back), a shared subscription so several workers split the stream, and the
MQTT ack sent only once the batch is durable: InfluxDB accepted it, or it is
fsynced in the worker's spool. Acks go in arrival order, and a batch never
waits for more messages than the in-flight window (Receive Maximum) lets the
broker send. Bad input goes to the dead-letter store; nothing takes the
worker down.
"""

import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics, stats_lines
from ingest.sink import Sink
from ingest.spool import Spool, SpoolFull
from telemetry_shared.influx import InfluxError, LineWriter
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

log = logging.getLogger("ingest")

SHARE_GROUP = "ingest"
SESSION_EXPIRY_S = 7 * 24 * 3600
DRAIN_TIMEOUT_S = 30.0
SPOOL_FULL_PAUSE_S = 1.0


class IngestWorker:
    def __init__(self, settings: Settings, registry: Registry, writer: LineWriter, dead_letters: DeadLetters):
        self.settings = settings
        self.registry = registry
        self.writer = writer
        self.dead_letters = dead_letters
        self.metrics = Metrics(settings.ingest_worker_id)
        self.counters = self.metrics.counters  # read-only view for tests and the CLI
        self.decoder = Decoder(registry, self.metrics)
        self.stopping = threading.Event()
        self.subscribed = threading.Event()  # set once the broker granted our subscriptions
        self._awaiting_subacks: set[int] = set()
        self.sink = Sink(writer, Spool(settings.spool_dir, settings.ingest_spool_max_mb * 1024 * 1024), dead_letters,
                         self.metrics, settings.ingest_batch_points, settings.ingest_retry_max_s,
                         settings.ingest_spool_after_s, self.stopping)
        # Flush at half the window, so the broker can send the other half while we write.
        self.flush_at = max(1, settings.ingest_receive_maximum // 2)
        self.pending: list[tuple[int, mqtt.MQTTMessage]] = []  # (connection generation, message)
        self.generation = 0
        self.lock = threading.Condition()
        self.client = self._make_client()
        self.flusher = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        self.stats = threading.Thread(target=self._stats_loop, name="ingest-stats", daemon=True)

    # ------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.mqtt_user, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        client.username_pw_set(s.mqtt_user, s.mqtt_password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(0.1, 1)  # back fast: see _on_connect
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            self.metrics.inc("mqtt_refused")
            return
        with self.lock:
            # Acks for messages of an earlier connection are not sent: the broker
            # redelivers them, and the copy we already stored is overwritten.
            self.generation += 1
        self.metrics.inc("mqtt_connects")
        # Mosquitto 2.0 does not restore shared subscriptions from its persistence
        # after a restart (plain ones it does): what devices publish before the
        # workers resubscribe would be lost. A lone worker therefore holds a plain
        # durable subscription; a group of workers shares one to split the load.
        # Status messages (birth, last will) become `device_status` points.
        for topic in (contract.TELEMETRY_SUB, contract.STATUS_SUB):
            shared = f"$share/{SHARE_GROUP}/{topic}"
            wanted, other = (shared, topic) if self.settings.ingest_workers > 1 else (topic, shared)
            client.unsubscribe(other)
            _, mid = client.subscribe(wanted, qos=1)
            self._awaiting_subacks.add(mid)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._awaiting_subacks.discard(mid)
        if not self._awaiting_subacks:
            self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self.stopping.is_set():
            log.warning("broker connection lost (%s); reconnecting", reason_code)
            self.metrics.inc("mqtt_disconnects")

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if self.stopping.is_set():
            return  # draining: never acked, so the broker keeps it for our next session
        with self.lock:
            self.pending.append((self.generation, message))
            if len(self.pending) >= self.flush_at:
                self.lock.notify()

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.settings.ingest_receive_maximum
        # clean_start=False: a restarted worker gets its queued messages back.
        # connect_async: a broker that is not up yet is retried, not fatal.
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                                  clean_start=False, properties=props)
        self.client.loop_start()
        self.flusher.start()
        self.stats.start()

    def stop(self) -> None:
        """Drain: store and ack what we hold, then leave (the session stays for our return)."""
        self.stopping.set()
        with self.lock:
            self.lock.notify()
        self.flusher.join(DRAIN_TIMEOUT_S)
        self.client.disconnect()
        self.client.loop_stop()
        self._write_stats()

    # ------------------------------------------------------------ batches

    def _flush_loop(self) -> None:
        while True:
            messages = self._next_batch()
            if not messages:
                if self.stopping.is_set():
                    return
                self.sink.replay()
                continue
            try:
                decoded = self.process([m for _, m in messages])
            except Exception:  # noqa: BLE001 (a bug or a locked file must not end the worker)
                log.exception("processing a batch failed; it stays unacked and is tried again")
                self.metrics.inc("batch_errors")
                self.decoder.forget_sequences()  # the retry must not see its own messages as duplicates
                self.stopping.wait(1.0)
                continue
            if decoded is None:
                return  # stopped while the spool was full: nothing acked, the broker keeps it all
            with self.lock:
                del self.pending[: len(messages)]
                current = self.generation
            for generation, message in messages:  # in arrival order
                if generation == current:
                    self.client.ack(message.mid, message.qos)
            self.sink.replay()

    def _next_batch(self) -> list[tuple[int, mqtt.MQTTMessage]]:
        with self.lock:
            if len(self.pending) < self.flush_at and not self.stopping.is_set():
                self.lock.wait(self.settings.ingest_batch_ms / 1000)
            return self.pending[: self.settings.ingest_receive_maximum]

    def process(self, messages: list[mqtt.MQTTMessage]) -> Decoded | None:
        """Decode once, then store until durable. None if stopped before the store took it."""
        decoded = Decoded()
        now_ms = int(time.time() * 1000)
        for message in messages:
            self.decoder.decode(message.topic, message.payload, now_ms, decoded)
        while True:
            try:
                self.sink.store(decoded.lines)
                break
            except SpoolFull as exc:
                log.error("InfluxDB away and the spool is full; holding %d messages unacked: %s", len(messages), exc)
                if self.stopping.wait(SPOOL_FULL_PAUSE_S):
                    return None
                self.sink.replay()
        self.dead_letters.add_many(decoded.rejects)
        for device_id, (t_ms, fw) in decoded.seen.items():
            self.registry.seen(device_id, t_ms, fw)
        if decoded.newest_live_ms:
            self.metrics.set("lag_seconds", max(0.0, time.time() - decoded.newest_live_ms / 1000))
        return decoded

    # ------------------------------------------------------------ counters to InfluxDB

    def _stats_loop(self) -> None:
        while not self.stopping.wait(self.settings.ingest_stats_interval_s):
            self._write_stats()

    def _write_stats(self) -> None:
        # Best effort: counters are cumulative, so a missed write loses no information.
        try:
            self.writer.write(stats_lines(self.metrics))
        except InfluxError as exc:
            self.metrics.inc("stats_write_errors")
            log.debug("could not write ingest_stats: %s", exc)
