"""The ingest worker: MQTT telemetry in, InfluxDB line protocol out.

Delivery: MQTT 5 (ingest/mqtt.py), QoS 1, a durable session under a fixed worker identity
(clean_start=False and a session expiry, so a restarted worker gets its queue
back), a shared subscription so several workers split the stream, and the
MQTT ack sent only once the batch is durable: InfluxDB accepted it, or it is
fsynced in the worker's spool. Acks go in arrival order, and a batch never
waits for more messages than the in-flight window (Receive Maximum) lets the
broker send. Bad input goes to the dead-letter store; nothing takes the
worker down.
"""

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics, stats_lines
from ingest.mqtt import Message, MqttClient, MqttHandler, MqttSubscriber
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
SEEN_EVERY_S = 5.0  # a device's last_seen_ms in the registry may lag this much (silence is judged in minutes)
FLUSH_BYTES = 1 << 20  # also flush once this much payload waits (large messages: big batches anyway)
MAX_PENDING_BYTES = 16 << 20  # past this the network thread stops reading: TCP holds the rest, memory stays flat
TOPICS = (contract.TELEMETRY_SUB, contract.STATUS_SUB)
# Batches written at once. influxd answers two concurrent writers faster than one (it waits on its WAL
# between requests); acks still leave in arrival order (see _ack_in_turn).
WRITERS = 2

ClientFactory = Callable[[Settings, MqttHandler], MqttClient]


def broker_client(settings: Settings, handler: MqttHandler) -> MqttClient:
    """The production client: a durable MQTT 5 session named after the worker's account."""
    return MqttSubscriber(settings.mqtt_host, settings.mqtt_port, settings.mqtt_user, settings.mqtt_user,
                          settings.mqtt_password, handler, settings.ingest_receive_maximum, SESSION_EXPIRY_S)


def subscriptions(workers: int) -> tuple[list[str], list[str]]:
    """(topics to hold, topics to drop) for a group of `workers`.

    Mosquitto 2.0 does not restore *shared* subscriptions from its persistence
    after a restart (plain ones it does): what devices publish before the
    workers resubscribe would be lost. A lone worker therefore holds a plain
    durable subscription; a group shares one to split the load. Status
    messages (birth, last will) become `device_status` points."""
    shared = [f"$share/{SHARE_GROUP}/{topic}" for topic in TOPICS]
    return (shared, list(TOPICS)) if workers > 1 else (list(TOPICS), shared)


class IngestWorker:
    """MQTT handler (network thread) + flusher thread (decodes) + two storer threads (write, then ack in order)."""

    def __init__(self, settings: Settings, registry: Registry, writer: LineWriter, dead_letters: DeadLetters,
                 client_factory: ClientFactory = broker_client, subscribe: bool = True):
        self.settings = settings
        self.registry = registry
        self.writer = writer
        self.dead_letters = dead_letters
        self.metrics = Metrics(settings.ingest_worker_id)
        self.counters = self.metrics.counters  # read-only view for tests and the CLI
        self.decoder = Decoder(registry, self.metrics)
        self.stopping = threading.Event()
        self.subscribed = threading.Event()  # set once the broker granted our subscriptions
        self.wants_subscription = subscribe  # False when retiring: drain the session, take nothing new
        self.sink = Sink(writer, Spool(settings.spool_dir, settings.ingest_spool_max_mb * 1024 * 1024), dead_letters,
                         self.metrics, settings.ingest_batch_points, settings.ingest_retry_max_s,
                         settings.ingest_spool_after_s, self.stopping)
        # Flush at half the window, so the broker can send the other half while we write.
        self.flush_at = max(1, settings.ingest_receive_maximum // 2)
        # The network thread appends whole chunks, the flusher pops: a deque needs no lock for that.
        self.pending: deque[Message] = deque()
        self.ready = threading.Event()  # set when a full batch is waiting
        self.taken = threading.Event()  # set when the flusher took a batch off `pending`
        self.held: list[Message] = []  # a batch that failed and is tried again
        self.taking: list[Message] = []  # the batch being taken off `pending` and decoded
        self.cut_short = False  # the last batch stopped at its size with messages still waiting
        self.resumed: dict[int, bool] = {}  # connection generation -> the broker kept our session
        self.last_message = time.monotonic()
        self.oldest_pending = self.last_message
        self.in_store = 0  # batches the storers hold and have not acked yet
        self.turn = threading.Condition()  # acks in arrival order: batch n waits for n - 1
        self.handed = 0  # batches handed to the storers (numbered by the flusher)
        self.acked = 0  # batches acked, in order
        self.abandoned = False  # a batch was left unacked at stop: no later one is acked either
        self.decoding = False  # the flusher holds a batch it took off `pending`
        # Payload bytes in and out of `pending`, each counted by one thread only, so no lock is needed.
        self.bytes_in = 0
        self.bytes_out = 0
        self.seen_written: dict[str, tuple[float, str]] = {}  # device -> (when, firmware) last told the registry
        self.client = client_factory(settings, self)
        self.to_store: queue.Queue[tuple[int, list[Message], Decoded] | None] = queue.Queue(maxsize=1)
        self.flusher = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        self.storers = [threading.Thread(target=self._store_loop, name=f"ingest-store-{n}", daemon=True)
                        for n in range(WRITERS)]
        self.stats = threading.Thread(target=self._stats_loop, name="ingest-stats", daemon=True)

    # ------------------------------------------------------------ MQTT (the client's network thread)

    def on_connect(self, generation: int, session_present: bool) -> None:
        self.resumed[generation] = session_present
        for old in [g for g in self.resumed if g < generation - 8]:
            del self.resumed[old]
        self.metrics.inc("mqtt_connects")
        if not self.wants_subscription:
            self.subscribed.set()  # retiring: connected; retire() drops the subscriptions once it is sure
            return
        wanted, other = subscriptions(self.settings.ingest_workers)
        self.client.unsubscribe(other)
        self.client.subscribe(wanted)

    def drop_subscriptions(self) -> None:
        """Retiring: take nothing new, only what the session already holds."""
        wanted, other = subscriptions(self.settings.ingest_workers)
        self.client.unsubscribe(wanted + other)

    def on_subscribed(self, failures: list[int]) -> None:
        if failures:
            log.error("the broker refused our subscriptions (reason codes %s): check the ingest account's rights",
                      [hex(code) for code in failures])
            self.metrics.inc("mqtt_subscribe_refused")
            return
        self.subscribed.set()

    def on_disconnect(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.warning("broker connection lost (%s); reconnecting", reason)
            self.metrics.inc("mqtt_disconnects")

    def on_messages(self, messages: list[Message]) -> None:
        if self.stopping.is_set():
            return  # draining: never acked, so the broker keeps them for our next session
        self.last_message = time.monotonic()
        if not self.pending:
            self.oldest_pending = self.last_message  # the batch timer runs from the oldest waiting message
        self.pending.extend(messages)
        self.bytes_in += sum(len(m.payload) for m in messages)
        if len(self.pending) >= self.flush_at or self.bytes_in - self.bytes_out >= FLUSH_BYTES:
            self.ready.set()
        while self.bytes_in - self.bytes_out > MAX_PENDING_BYTES and not self.stopping.is_set():
            self.taken.clear()
            self.taken.wait(0.5)  # until the flusher takes a batch

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self.client.start()
        for storer in self.storers:
            storer.start()
        self.flusher.start()
        self.stats.start()

    def stop(self, session_expiry_s: int | None = None) -> None:
        """Drain: store and ack what we hold, then leave (the session stays for our return,
        unless `session_expiry_s=0`)."""
        self.stopping.set()
        self.ready.set()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        self.flusher.join(DRAIN_TIMEOUT_S)
        for storer in self.storers:
            storer.join(max(0.1, deadline - time.monotonic()))
        self.client.stop(session_expiry_s)
        self._write_stats()

    def idle(self) -> bool:
        """Nothing held or waiting (used to know when a retiring worker's session is empty)."""
        return (not self.pending and not self.held and not self.decoding and self.to_store.empty()
                and not self.in_store)

    # ------------------------------------------------------------ batches: decoded by the flusher,
    # stored and acked by the storers, so the next batch is decoded while InfluxDB writes these

    def _flush_loop(self) -> None:
        while True:
            if not self.held:
                self._wait_for_batch()
                if not self.pending and self.stopping.is_set():
                    for _ in self.storers:
                        self._hand_over(None)
                    return
            self.decoding = True
            try:
                batch, decoded = self._take_and_decode()
            except Exception:  # noqa: BLE001 (a bug must not end the worker)
                log.exception("decoding a batch failed; it stays unacked and is tried again")
                self.metrics.inc("batch_errors")
                self.held = self.taking
                self.decoder.forget_sequences()  # the retry must not see its own messages as duplicates
                self.stopping.wait(1.0)
                continue
            self.held = []
            handed = not batch or self._hand_over((self.handed + 1, batch, decoded))
            if batch and handed:
                self.handed += 1
            self.decoding = False
            if not handed:
                return

    def _hand_over(self, item: tuple[int, list[Message], Decoded] | None) -> bool:
        while any(storer.is_alive() for storer in self.storers):
            try:
                self.to_store.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False  # the storer left (stopped while the spool was full): nothing more is acked

    def _store_loop(self) -> None:
        while True:
            try:
                item = self.to_store.get(timeout=self.settings.ingest_batch_ms / 1000)
            except queue.Empty:
                self.sink.replay()
                continue
            if item is None:
                return
            number, batch, decoded = item
            with self.turn:
                self.in_store += 1
            try:
                stored = self._store_until_durable(decoded, len(batch))
                if stored:
                    self._ack_in_turn(number, batch)
                else:
                    with self.turn:  # never acked: the broker keeps it, and every later batch, for our next session
                        self.abandoned = True
                        self.turn.notify_all()
            finally:
                with self.turn:
                    self.in_store -= 1
            if not stored:
                return
            self.sink.replay()

    def _store_until_durable(self, decoded: Decoded, messages: int) -> bool:
        while True:
            try:
                return self.store(decoded, messages)
            except Exception:  # noqa: BLE001 (a bug or a locked file must not end the worker)
                log.exception("storing a batch failed; it stays unacked and is tried again")
                self.metrics.inc("batch_errors")
                if self.stopping.wait(1.0):
                    return False

    def _ack_in_turn(self, number: int, batch: list[Message]) -> None:
        """Ack batch `number` once every earlier batch is acked (acks go in arrival order)."""
        with self.turn:
            while self.acked != number - 1 and not self.abandoned:
                self.turn.wait(0.5)
            if self.abandoned:
                return  # an earlier batch was left unacked at stop: this one stays with the broker too
            self._ack(batch)
            self.acked = number
            self.turn.notify_all()

    def _wait_for_batch(self) -> None:
        """Until a batch is due: a full one waits (or the previous batch was cut at its size, so more
        are queued), or the oldest waiting message has waited CITY_INGEST_BATCH_MS."""
        full = (self.cut_short and self.pending) or len(self.pending) >= self.flush_at \
            or self.bytes_in - self.bytes_out >= FLUSH_BYTES
        if not full and not self.stopping.is_set():
            started = self.oldest_pending if self.pending else time.monotonic()
            self.ready.wait(max(0.0, started + self.settings.ingest_batch_ms / 1000 - time.monotonic()))
        self.ready.clear()

    def _take_and_decode(self) -> tuple[list[Message], Decoded]:
        """The held batch again, or messages taken off `pending` and decoded one by one until the
        batch holds CITY_INGEST_BATCH_POINTS lines or half the in-flight window: so the storer
        writes this batch while the next is decoded, whatever the readings a message."""
        decoded = Decoded()
        now_ms = int(time.time() * 1000)
        self.decoder.begin_batch()
        if self.held:
            batch = self.held
            for message in batch:
                self._decode_one(message, now_ms, decoded)
        else:
            batch = self.taking = []
            pending, pop, lines = self.pending, self.pending.popleft, decoded.lines
            max_messages, max_lines = self.flush_at, self.settings.ingest_batch_points
            while pending and len(batch) < max_messages and len(lines) < max_lines:
                message = pop()
                batch.append(message)
                self._decode_one(message, now_ms, decoded)
            self.cut_short = bool(pending)
            self.oldest_pending = time.monotonic()  # what is left (if anything) waits from now on, about
            self.bytes_out += sum(len(m.payload) for m in batch)
            self.taken.set()
        self.metrics.inc("received", decoded.received)
        self.metrics.inc("readings", decoded.readings)
        return batch, decoded

    def _ack(self, batch: Sequence[Message]) -> None:
        """One ack write per connection, in arrival order; the client drops acks of a connection
        that is gone (the broker redelivers those, and the stored copy is overwritten)."""
        generation, mids = None, []
        for message in batch:
            if not message.mid:
                continue  # QoS 0: nothing to ack
            if message.generation != generation:
                if mids:
                    self.client.ack(generation, mids)
                generation, mids = message.generation, []
            mids.append(message.mid)
        if mids:
            self.client.ack(generation, mids)

    def _decode_one(self, message: Message, now_ms: int, decoded: Decoded) -> None:
        if message.retain and self.resumed.get(message.generation):
            # A retained copy sent again on a resumed session: we stored it when it was live.
            self.metrics.inc("retained_skipped")
            return
        self.decoder.decode(message.topic, message.payload, now_ms, decoded)

    def store(self, decoded: Decoded, messages: int) -> bool:
        """Store until durable (InfluxDB or the spool, and the dead letters). False if stopped first."""
        while True:
            try:
                self.sink.store(decoded.lines)
                break
            except SpoolFull as exc:
                log.error("InfluxDB away and the spool is full; holding %d messages unacked: %s", messages, exc)
                if self.stopping.wait(SPOOL_FULL_PAUSE_S):
                    return False
                self.sink.replay()
        self.dead_letters.add_many(decoded.rejects)
        self._record_seen(decoded.seen)
        if decoded.newest_live_ms:
            self.metrics.set("lag_seconds", max(0.0, time.time() - decoded.newest_live_ms / 1000))
        return True

    def _record_seen(self, seen: dict[str, tuple[int, str]]) -> None:
        """Tell the registry which devices spoke: one transaction per batch, and a device at most
        every SEEN_EVERY_S unless its firmware changed (profiling found one SQLite commit per
        device per batch to cost more than decoding the messages)."""
        now = time.monotonic()
        due = []
        for device_id, (t_ms, fw) in seen.items():
            last = self.seen_written.get(device_id)
            if last is None or now - last[0] >= SEEN_EVERY_S or last[1] != fw:
                due.append((device_id, t_ms, fw))
                self.seen_written[device_id] = (now, fw)
        if due:
            self.registry.seen_many(due)

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
