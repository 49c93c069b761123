# The edge agent: sample at the configured interval, batch, publish QoS 1 to
# the device's own telemetry topic, keep readings while the broker is away and
# backfill them (flagged historical) when it returns. A birth message on the
# status topic and a last will that marks the device offline; the retained
# config topic changes the interval, batch size or thresholds without a reboot.
#
# Small boards: the agent sizes its RAM ring, its message buffer and each
# batch from the memory it has (gc.mem_free()), encodes every message into one
# buffer allocated at boot, and when memory runs out anyway (MemoryError) it
# puts the samples back, collects and halves the batch: it never crash-loops
# on its own spool.
#
# The link: TLS with the city's CA pinned from a file on flash ("ca_path") and
# the server's name checked; plain MQTT only with an explicit "tls": false.
# Why the last connection attempt failed (e.g. "tls_expired") is reported in
# the birth message once the device is back.

import gc
import random
import sys

from edge import contract
from edge.buffer import SampleBuffer
from edge.clock import sleep_ms, ticks_add, ticks_diff, ticks_ms, utc_ms
from edge.mqtt import MQTTClient, MQTTException

FW_VERSION = "0.1.0"
BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 30000
HIST_BATCH = 60  # samples per backfill message, at most
SAMPLE_RAM = 400  # bytes a queued sample takes in RAM (measured: 270 for 3 metrics, more for 6)
TAKE_COST = 700  # bytes to take one sample from the spool and encode it (parse, dict, JSON text)
RESERVE = 12000  # bytes kept free for the socket, TLS records, the status message and the drivers
# On a board the message is sent straight from the reused buffer; CPython
# callers (the simulator, test doubles, paho) get bytes they can keep.
_COPY_PAYLOAD = sys.implementation.name != "micropython"
_SMALL_HEAP = hasattr(gc, "mem_free")  # MicroPython: memory is counted and collected by hand


def new_boot_id():
    """A random 31-bit boot identity, new at every boot (seq restarts at 0 with it).

    os.urandom draws on the board's hardware RNG where it has one; `random`
    alone may start from the same seed after every power-up."""
    try:
        import os

        raw = os.urandom(4)
        return (raw[0] << 24 | raw[1] << 16 | raw[2] << 8 | raw[3]) & 0x7FFFFFFF
    except (ImportError, AttributeError, NotImplementedError, OSError):
        return random.getrandbits(31)


def _mem_free():
    try:
        return gc.mem_free()
    except AttributeError:  # CPython
        return None


def fit_to_memory(config, free):
    """(RAM ring samples, message buffer bytes) for a board with `free` bytes of heap.

    The configured ring is kept when it fits in a third of the heap; a board
    that has less gets a smaller ring (older samples then go to the spool)."""
    ring = config.get("buffer_capacity", 2000)
    message = config.get("message_bytes", contract.MAX_PAYLOAD_BYTES)
    if free is None:
        return ring, message
    room = max(0, free - RESERVE)
    return max(4, min(ring, room // 3 // SAMPLE_RAM)), max(1024, min(message, room // 6))


def link_failure(exc):
    """A short code for why a connection attempt failed, for the next birth message."""
    reason = getattr(exc, "reason", None)  # TLSError and TLSConfigError carry one
    if reason:
        return reason
    if isinstance(exc, MQTTException):
        return "mqtt_refused" if "refused" in str(exc) else "mqtt_error"
    return "unreachable"


def make_client(config, device_id):
    """The firmware MQTT client for this config: TLS with the pinned CA unless "tls" is false."""
    server = config.get("server", "127.0.0.1")
    context = None
    if config.get("tls") is not False:
        if not config.get("ca_path"):
            raise ValueError('config: no "ca_path" for TLS; set "tls": false to use plain MQTT on purpose')
        from edge.tls import client_context

        context = client_context(config["ca_path"])
    return MQTTClient(device_id, server, config.get("port", 8883 if context else 1883),
                      config.get("user", device_id), config.get("password"),
                      keepalive_s=config.get("keepalive_s", 30), ssl=context,
                      server_hostname=config.get("server_hostname"))


class Agent:
    def __init__(self, config, source, client=None):
        self.device_id = config["device_id"]
        self.fw = config.get("fw", FW_VERSION)
        self.interval_ms = config.get("interval_ms", 10000)
        self.batch_size = config.get("batch_size", 1)
        self.thresholds = {}
        self.source = source
        if _SMALL_HEAP:
            gc.collect()  # an honest mem_free (on CPython a full collection would only cost time)
        ring, message_bytes = fit_to_memory(config, _mem_free())
        if ring < config.get("buffer_capacity", 2000):
            print("RAM ring cut to", ring, "samples to fit the heap")
        self.buffer = SampleBuffer(ring, config.get("spool_path"), config.get("spool_capacity", 20000))
        self.out = contract.MessageBuffer(message_bytes)  # every message is encoded here, allocated once
        self.batch_cap = HIST_BATCH  # halved when a batch does not fit, grown back one by one
        self.link_error = None  # why the last connection attempt failed, for the next birth message
        self.boot = new_boot_id()  # with seq, names each message: a reboot is not a replay
        self.seq = 0
        self.inflight = None  # (payload, hist) until the broker acknowledges it
        self.urgent = False
        self.connected = False
        self.started = ticks_ms()
        self.backoff_max_ms = config.get("backoff_max_ms", BACKOFF_MAX_MS)
        self.backoff_ms = BACKOFF_MIN_MS
        self.published = 0
        self.read_errors = 0
        self.status_interval_ms = config.get("status_interval_ms", 300000)  # health, retained, this often
        self.status_sent = 0
        self.telemetry_topic = contract.telemetry_topic(self.device_id)
        self.status_topic = contract.status_topic(self.device_id)
        self.config_topic = contract.config_topic(self.device_id)
        if client is None:
            client = make_client(config, self.device_id)
        self.client = client
        self.client.set_callback(self.on_message)
        self.client.set_last_will(self.status_topic, self.offline_status(), True, 1)

    # ------------------------------------------------------------ state

    def sample(self, t_ms=None, hist=None):
        """Read the source once and queue the sample.

        t_ms and hist default to now and "taken while offline"; the simulator
        passes its own clock and flags replayed history.
        """
        try:
            values, quality = self.source.read()
        except OSError as exc:  # a sensor that did not answer: skip this sample, keep running
            self.read_errors += 1
            print("sensor read failed:", exc)
            return
        for metric in values:
            limits = self.thresholds.get(metric)
            if limits and not limits[0] <= values[metric] <= limits[1]:
                self.urgent = True  # report by exception: send now, not at the batch end
        if t_ms is None:
            t_ms = utc_ms()
        if hist is None:
            hist = not self.connected
        try:
            self.buffer.append((t_ms, values, quality, hist))
        except MemoryError:  # the ring spills to flash from here on; this one sample is counted as lost
            gc.collect()
            self.buffer.dropped += 1

    def ready(self):
        if self.inflight is not None:
            return True
        head_is_hist = self.buffer.head_hist()
        if head_is_hist is None:
            return False
        return head_is_hist or self.urgent or len(self.buffer) >= self.batch_size

    def batch_limit(self):
        """How many samples the next message may take: the memory there is, and what fitted before."""
        wanted = HIST_BATCH if self.buffer.head_hist() else max(self.batch_size, 1)
        free = _mem_free()
        if free is not None:
            wanted = min(wanted, max(1, (free - RESERVE) // TAKE_COST))
        return max(1, min(wanted, self.batch_cap))

    def next_message(self):
        """The message to publish next: the unacknowledged one first; None when it could
        not be built this time (no memory): the samples stay queued, the batch is halved."""
        if self.inflight is None:
            n = self.batch_limit()
            samples = None
            try:
                samples = self.buffer.take(n)
                head_is_hist = samples[0][3]
                payload = contract.encode_telemetry_into(self.out, self.seq, samples, self.fw, head_is_hist,
                                                         self.buffer.dropped, self.boot)
            except (MemoryError, contract.ContractError) as exc:  # ContractError: oversized for the buffer
                self.shrink(samples, n, exc)
                return None
            self.batch_cap = min(HIST_BATCH, self.batch_cap + 1)
            self.buffer.dropped = 0
            self.seq = (self.seq + 1) % (contract.MAX_SEQ + 1)
            self.urgent = False
            self.inflight = bytes(payload) if _COPY_PAYLOAD else payload
        return self.inflight

    def shrink(self, samples, n, exc):
        """A batch that did not fit: put its samples back, collect, halve the batch."""
        if samples:
            if n == 1 and not isinstance(exc, MemoryError):
                self.buffer.dropped += 1  # one sample larger than a message: it can never be sent
            else:
                self.buffer.put_back(samples)
        samples = None
        if _SMALL_HEAP:
            gc.collect()
        self.batch_cap = max(1, n // 2)
        print("batch of", n, "did not fit (" + str(exc) + "): now", self.batch_cap)

    def on_message(self, topic, payload):
        if topic.decode() == self.config_topic:
            self.apply_config(payload)

    def apply_config(self, payload):
        try:
            config = contract.decode_config(payload)
        except contract.ContractError as exc:
            print("config refused:", exc)
            return
        self.interval_ms = config["interval_ms"]
        self.batch_size = config["batch_size"]
        self.thresholds = config["thresholds"]

    def status(self):
        health = self.source.health() if hasattr(self.source, "health") else {}
        tls = getattr(self.client, "tls", None)  # None: a client that cannot say (the simulator's before TLS)
        return contract.encode_status(
            "online",
            self.fw,
            uptime_s=ticks_diff(ticks_ms(), self.started) // 1000,
            mem_free=_mem_free(),
            rssi_dbm=health.get("rssi_dbm"),
            battery_v=health.get("battery_v"),
            dropped=self.buffer.dropped,
            boot=self.boot,
            tls=tls,
            link_error=self.link_error,
        )

    def offline_status(self):
        """The last will, and the goodbye of a clean stop."""
        return contract.encode_status("offline", self.fw, boot=self.boot)

    # ------------------------------------------------------------ network

    def connect(self):
        try:
            self.client.connect(clean_session=True)
        except OSError as exc:
            self.link_error = link_failure(exc)
            raise
        self.publish_status()
        self.link_error = None  # reported
        self.client.subscribe(self.config_topic, 1)
        self.connected = True
        self.backoff_ms = BACKOFF_MIN_MS

    def status_due(self, now):
        return self.connected and ticks_diff(now, self.status_sent) >= self.status_interval_ms

    def publish_status(self):
        self.client.publish(self.status_topic, self.status(), True, 1)
        self.status_sent = ticks_ms()

    def publish_ready(self):
        while self.connected and self.ready():
            payload = self.next_message()
            if payload is None:
                return  # no memory for this batch now: a smaller one at the next turn
            self.client.publish(self.telemetry_topic, payload, False, 1)
            self.inflight = None
            self.published += 1

    def lost_connection(self):
        self.connected = False
        self.client.close()

    def retry_delay_ms(self):
        """Exponential backoff with jitter, so a fleet does not reconnect in step."""
        delay = self.backoff_ms // 2 + random.getrandbits(16) % (self.backoff_ms // 2 + 1)
        self.backoff_ms = min(self.backoff_ms * 2, self.backoff_max_ms)
        return delay

    def run(self, max_messages=None, duration_ms=None):
        """The agent loop. Stops after max_messages or duration_ms when given."""
        start = ticks_ms()
        next_sample = start
        next_retry = start
        while True:
            now = ticks_ms()
            if max_messages is not None and self.published >= max_messages:
                break
            if duration_ms is not None and ticks_diff(now, start) >= duration_ms:
                break
            if not self.connected and ticks_diff(now, next_retry) >= 0:
                try:
                    self.connect()
                except OSError as exc:
                    print("connect failed:", exc)
                    next_retry = ticks_add(ticks_ms(), self.retry_delay_ms())
            if ticks_diff(now, next_sample) >= 0:
                self.sample()
                next_sample = ticks_add(next_sample, self.interval_ms)
                if ticks_diff(now, next_sample) > 0:
                    next_sample = ticks_add(now, self.interval_ms)  # fell behind: skip, do not burst
            wait = max(0, min(ticks_diff(next_sample, ticks_ms()), 200))
            if self.connected:
                try:
                    if self.status_due(ticks_ms()):
                        self.publish_status()
                    self.publish_ready()
                    self.client.check_msg(wait)
                except OSError as exc:
                    print("connection lost:", exc)
                    self.lost_connection()
                    next_retry = ticks_add(ticks_ms(), self.retry_delay_ms())
            else:
                sleep_ms(wait)
        self.stop()

    def stop(self):
        """Send what is buffered, then say goodbye: a clean disconnect does not fire the last will."""
        if not self.connected:
            return
        try:
            stuck = 0
            while (self.inflight is not None or len(self.buffer)) and stuck < 8:
                self.urgent = True  # a last, possibly short, batch
                before = len(self.buffer)
                self.publish_ready()
                stuck = stuck + 1 if len(self.buffer) == before and self.inflight is None else 0
            self.client.publish(self.status_topic, self.offline_status(), True, 1)
            self.client.disconnect()
        except OSError:
            self.client.close()
        self.connected = False
