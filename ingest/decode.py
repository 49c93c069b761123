"""Decode, validate and enrich telemetry: raw MQTT messages in, line protocol
and dead-letter entries out. No I/O except the (cached) registry lookups.

Every input gives lines, dead-letter entries, or a counted duplicate; nothing
raises past `Decoder.decode`, whatever the bytes.
"""

import time
import zlib
from dataclasses import dataclass, field

import orjson

from edge import contract
from ingest.metrics import Metrics
from ingest.points import batch_lines, line_head, status_line
from telemetry_shared.registry import Device, Registry, RegistryCache

MAX_TOPICS = 100_000  # parsed topics remembered (a flood of new ids empties it, no more)
RECENT_SEQS = 32  # per device: how many ((boot, seq), payload checksum) pairs we remember to spot redeliveries

DeadLetter = tuple[str, str, str, str, bytes]  # (reason, device, topic, detail, payload)


class SequenceTracker:
    """Per device: the last (boot, seq) and a few recent ((boot, seq), checksum) pairs.

    A message is named by (boot, seq): the device picks a new boot id at every
    boot and restarts seq at 0, so a rebooted device is never taken for a
    replay. The same (boot, seq) with the same bytes is a redelivery (after a
    reconnect): the first copy is already durable, so it is counted and
    skipped. The same (boot, seq) with other bytes is a device repeating a
    number: dead-lettered. Older firmware sends no boot id (boot None): there
    the same seq with other bytes is taken as a reboot and stored (points are
    named by their timestamps, so nothing is overwritten that should not be).
    A seq that jumps ahead within one boot counts the missing ones as gaps.
    (With several workers on one shared subscription each sees part of a
    device's stream, so its gap count is an upper bound; the rollup job's
    `seq_gaps` is the fleet-wide figure.)
    """

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.last: dict[str, tuple[int | None, int]] = {}
        self.recent: dict[str, dict[tuple[int | None, int], int]] = {}

    def check(self, device_id: str, seq: int, payload: bytes, boot: int | None = None) -> str | None:
        """None for a new message, else 'duplicate' or 'repeated_seq'."""
        checksum = zlib.crc32(payload)
        key = (boot, seq)
        recent = self.recent.get(device_id)
        if recent is None:
            recent = self.recent[device_id] = {}
        seen = recent.get(key)
        if seen is not None:
            if seen == checksum:
                return "duplicate"
            if boot is not None:
                return "repeated_seq"
            recent.clear()  # no boot id: a reboot; what we remember belongs to the previous boot
        last = self.last.get(device_id)
        if last is not None:
            if last[0] != boot or seq < last[1]:
                self.metrics.inc("sequence_restarts")
            elif seq > last[1] + 1:
                self.metrics.gap(device_id, seq - last[1] - 1)
        self.last[device_id] = key
        recent[key] = checksum
        if len(recent) > RECENT_SEQS:
            del recent[next(iter(recent))]  # dicts keep insertion order: the oldest goes
        return None


@dataclass
class Decoded:
    lines: list[str] = field(default_factory=list)
    rejects: list[DeadLetter] = field(default_factory=list)
    seen: dict[str, tuple[int, str]] = field(default_factory=dict)  # device -> (newest t_ms, firmware)
    newest_live_ms: int = 0  # the newest non-historical sample, for the lag gauge
    received: int = 0  # messages decoded (counted once per batch: a lock per message costs)
    readings: int = 0  # readings accepted


class Decoder:
    def __init__(self, registry: Registry, metrics: Metrics):
        self.devices = RegistryCache(registry)
        self.metrics = metrics
        self.sequences = SequenceTracker(metrics)
        self.batch_started = time.monotonic()
        self.topics: dict[str, tuple[str, str]] = {}  # topic -> (device id, leaf): parsed once
        self.heads: dict[tuple[str, str, str], str] = {}  # (kind, device, district) -> line head

    def begin_batch(self) -> None:
        """Call before decoding a batch of messages that have all arrived by now."""
        self.batch_started = time.monotonic()
        self.devices.get("")  # the registry's version checked once a batch (at most every second), not per message

    def forget_sequences(self) -> None:
        self.sequences = SequenceTracker(self.metrics)

    def decode(self, topic: str, payload: bytes, now_ms: int, out: Decoded) -> None:
        """Add one message's lines or dead-letter entries to `out` (and count it in out.received)."""
        out.received += 1
        payload = bytes(payload)
        if type(topic) is str and topic.endswith("/status"):
            self._decode_status(topic, payload, now_ms, out)
            return
        try:
            device_id, device = self._device(topic)
            batch = contract.decode_telemetry(payload, device.kind, now_ms, loads=orjson.loads)
        except contract.ContractError as exc:
            self.metrics.inc(f"rejected_{exc.reason}")
            out.rejects.append((exc.reason, _device_of(topic), _printable_topic(topic), exc.detail, payload))
            return
        repeat = self.sequences.check(device_id, batch.seq, payload, batch.boot)
        if repeat == "duplicate":
            self.metrics.inc("duplicates")
            return
        if repeat == "repeated_seq":
            self.metrics.inc("rejected_repeated_seq")
            detail = f"seq {batch.seq} of boot {batch.boot} again, other content"
            out.rejects.append(("repeated_seq", device_id, topic, detail, payload))
            return
        for t_ms, metric, value, reason in batch.rejects:
            self.metrics.inc(f"rejected_{reason}")
            detail = orjson.dumps({"t_ms": t_ms, "metric": metric, "value": value}).decode()
            out.rejects.append((reason, device_id, topic, detail, payload))
        if batch.dropped:
            self.metrics.inc("device_dropped", batch.dropped)
        samples = batch.samples
        if samples:
            newest = samples[0][0] if len(samples) == 1 else max([s[0] for s in samples])
            previous = out.seen.get(device_id)
            if previous is None or previous[0] < newest or previous[1] != batch.fw:
                out.seen[device_id] = (newest if previous is None else max(newest, previous[0]), batch.fw)
            if not batch.hist and newest > out.newest_live_ms:
                out.newest_live_ms = newest
            out.readings += len(samples[0][1]) if len(samples) == 1 else sum([len(s[1]) for s in samples])
        key = (device.kind, device_id, device.district)
        head = self.heads.get(key)
        if head is None:
            if len(self.heads) >= MAX_TOPICS:
                self.heads.clear()
            head = self.heads[key] = line_head(*key)
        out.lines.extend(batch_lines(batch, head))

    def _decode_status(self, topic: str, payload: bytes, now_ms: int, out: Decoded) -> None:
        """A birth message or last will: one `device_status` point at the time it arrived."""
        if not payload:
            # An empty status is MQTT's way to delete a retained one (`city device retire` clears the
            # retired device's status so no subscriber is handed it again): no data, not an error.
            self.metrics.inc("status_cleared")
            return
        try:
            # a status is a birth or a last will: rare, and the will of a device retired a moment ago must
            # be seen as the retired device's, so the registry is read again for it (once per batch at most)
            device_id, device = self._device(topic, "status", fresh=True)
            status = contract.decode_status(payload, loads=orjson.loads)
        except contract.ContractError as exc:
            if exc.reason == "retired_device":
                # A retired device's last will (published when `city device retire` takes its session
                # over) or its retained status: expected, and no data. Counted, not a dead letter.
                self.metrics.inc("status_of_retired_device")
                return
            self.metrics.inc(f"rejected_status_{exc.reason}")
            out.rejects.append((exc.reason, _device_of(topic), _printable_topic(topic), exc.detail, payload))
            return
        self.metrics.inc("status_messages")
        out.lines.append(status_line(status, device_id, device.kind, device.district, now_ms))

    def _device(self, topic: str, expected_leaf: str = "telemetry", fresh: bool = False) -> tuple[str, Device]:
        parsed = self.topics.get(topic)
        if parsed is None:
            parsed = contract.parse_topic(topic)  # raises for a bad topic, which is never remembered
            if len(self.topics) >= MAX_TOPICS:
                self.topics.clear()
            self.topics[topic] = parsed
        device_id, leaf = parsed
        if leaf != expected_leaf:
            raise contract.ContractError("bad_topic", f"not a {expected_leaf} topic")
        device = self.devices.devices.get(device_id)  # the cache as begin_batch left it
        if fresh or device is None or device.state == "retired":
            # Not known, or retired, in our copy: read the registry again unless it was read after this
            # batch was taken, so a device registered before its message arrived is never refused.
            # At most one re-read per batch, whatever a flood of unknown ids sends.
            device = self.devices.get(device_id, fresh_since=self.batch_started)
        if device is None:
            raise contract.ContractError("unknown_device", device_id)
        if device.state == "retired":
            raise contract.ContractError("retired_device", device_id)
        if device.kind not in contract.KINDS:
            raise contract.ContractError("unknown_kind", device.kind[:40])
        return device_id, device


def _device_of(topic: object) -> str:
    if type(topic) is not str:
        return ""
    parts = topic.split("/")
    return parts[3][:64] if len(parts) > 3 else ""


def _printable_topic(topic: object) -> str:
    return topic[:256] if type(topic) is str else repr(topic)[:256]
