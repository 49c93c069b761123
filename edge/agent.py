# The edge agent: sample at the configured interval, batch, publish QoS 1 to
# the device's own telemetry topic, keep readings while the broker is away and
# backfill them (flagged historical) when it returns. A birth message on the
# status topic and a last will that marks the device offline; the retained
# config topic changes the interval, batch size or thresholds without a reboot.

import random

from edge import contract
from edge.buffer import SampleBuffer
from edge.clock import sleep_ms, ticks_diff, ticks_ms, utc_ms
from edge.mqtt import MQTTClient

FW_VERSION = "0.1.0"
BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 30000
HIST_BATCH = 60  # samples per backfill message


def _ticks_add(a, delta):
    import time

    if hasattr(time, "ticks_add"):
        return time.ticks_add(a, delta)
    return a + delta


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
        import gc

        return gc.mem_free()
    except (ImportError, AttributeError):
        return None


class Agent:
    def __init__(self, config, source, client=None):
        self.device_id = config["device_id"]
        self.fw = config.get("fw", FW_VERSION)
        self.interval_ms = config.get("interval_ms", 10000)
        self.batch_size = config.get("batch_size", 1)
        self.thresholds = {}
        self.source = source
        self.buffer = SampleBuffer(config.get("buffer_capacity", 2000), config.get("spool_path"),
                                   config.get("spool_capacity", 20000))
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
            client = MQTTClient(
                self.device_id,
                config.get("server", "127.0.0.1"),
                config.get("port", 1883),
                config.get("user", self.device_id),
                config.get("password"),
                keepalive_s=config.get("keepalive_s", 30),
            )
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
        self.buffer.append((t_ms, values, quality, hist))

    def ready(self):
        if self.inflight is not None:
            return True
        head_is_hist = self.buffer.head_hist()
        if head_is_hist is None:
            return False
        return head_is_hist or self.urgent or len(self.buffer) >= self.batch_size

    def next_message(self):
        """The message to publish next: the unacknowledged one first."""
        if self.inflight is None:
            samples = self.buffer.take(HIST_BATCH if self.buffer.head_hist() else max(self.batch_size, 1))
            head_is_hist = samples[0][3]
            rows = [(s[0], s[1], s[2]) for s in samples]
            payload = contract.encode_telemetry(self.seq, rows, self.fw, head_is_hist, self.buffer.dropped,
                                                self.boot)
            self.buffer.dropped = 0
            self.seq = (self.seq + 1) % (contract.MAX_SEQ + 1)
            self.urgent = False
            self.inflight = payload
        return self.inflight

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
        return contract.encode_status(
            "online",
            self.fw,
            uptime_s=ticks_diff(ticks_ms(), self.started) // 1000,
            mem_free=_mem_free(),
            rssi_dbm=health.get("rssi_dbm"),
            battery_v=health.get("battery_v"),
            dropped=self.buffer.dropped,
            boot=self.boot,
        )

    def offline_status(self):
        """The last will, and the goodbye of a clean stop."""
        return contract.encode_status("offline", self.fw, boot=self.boot)

    # ------------------------------------------------------------ network

    def connect(self):
        self.client.connect(clean_session=True)
        self.publish_status()
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
            self.client.publish(self.telemetry_topic, self.next_message(), False, 1)
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
                    next_retry = _ticks_add(ticks_ms(), self.retry_delay_ms())
            if ticks_diff(now, next_sample) >= 0:
                self.sample()
                next_sample = _ticks_add(next_sample, self.interval_ms)
                if ticks_diff(now, next_sample) > 0:
                    next_sample = _ticks_add(now, self.interval_ms)  # fell behind: skip, do not burst
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
                    next_retry = _ticks_add(ticks_ms(), self.retry_delay_ms())
            else:
                sleep_ms(wait)
        self.stop()

    def stop(self):
        """Send what is buffered, then say goodbye: a clean disconnect does not fire the last will."""
        if not self.connected:
            return
        try:
            while self.inflight is not None or len(self.buffer):
                self.urgent = True  # a last, possibly short, batch
                self.publish_ready()
            self.client.publish(self.status_topic, self.offline_status(), True, 1)
            self.client.disconnect()
        except OSError:
            self.client.close()
        self.connected = False
