"""The worker's delivery rules, tested with a fake MQTT client and a scripted
writer (no broker, no InfluxDB): an ack only after the batch is durable, in
arrival order, one write per batch, never for a connection that is gone;
dead letters and redeliveries acked; a drain stores and acks what it holds;
retained copies on a resumed session skipped."""

import threading
import time

import pytest

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_shared.influx import InfluxUnavailable
from telemetry_shared.registry import DeviceNew
from tests.conftest import make_settings, wait_for
from tests.ingest.fake_mqtt import FakeClient

DEVICE = "wtr-0001"
TOPIC = contract.telemetry_topic(DEVICE)
STATUS = contract.status_topic(DEVICE)


class ScriptedWriter:
    """Records what it stores; can be held (a slow InfluxDB) or made to fail."""

    def __init__(self):
        self.lines: list[str] = []
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self.failure: Exception | None = None

    def write(self, lines: list[str]) -> None:
        self.calls += 1
        self.gate.wait(10)
        if self.failure:
            raise self.failure
        self.lines += [line for line in lines if not line.startswith("ingest_")]  # not the worker's counters

    def close(self) -> None:
        pass


def telemetry(seq: int, value: float = 1.0) -> bytes:
    now = int(time.time() * 1000)
    return contract.encode_telemetry(seq, [(now - 1000 + seq, {"flow_lps": value})], "0.1.0")


@pytest.fixture
def worker(tmp_path, registry):
    registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari"))
    settings = make_settings(tmp_path, ingest_batch_ms=20, ingest_receive_maximum=100, ingest_spool_after_s=0,
                             ingest_retry_max_s=0.1, ingest_stats_interval_s=3600)
    writer = ScriptedWriter()
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    w = IngestWorker(settings, registry, writer, dead, client_factory=lambda s, handler: FakeClient(handler))
    w.start()
    yield w, w.client, writer, dead
    writer.gate.set()
    writer.failure = None
    w.stop()


def test_acks_follow_the_write_in_arrival_order_in_one_call(worker):
    w, client, writer, _ = worker
    writer.gate.clear()  # InfluxDB is slow to answer
    mids = client.deliver(*[(TOPIC, telemetry(seq)) for seq in range(5)])
    wait_for(lambda: writer.calls >= 1, 5)
    time.sleep(0.2)
    assert client.acked == []  # nothing acked while the write is in flight
    writer.gate.set()
    wait_for(lambda: client.acked == mids, 5)
    assert len(writer.lines) == 5
    assert [generation for generation, _ in client.ack_calls] == [1]  # one ack write for the batch


def test_acks_of_a_lost_connection_are_not_sent_and_the_redelivery_is_acked(worker):
    w, client, writer, _ = worker
    writer.gate.clear()
    payloads = [(TOPIC, telemetry(seq)) for seq in range(3)]
    client.deliver(*payloads)
    wait_for(lambda: writer.calls >= 1, 5)
    client.connect(session_present=True)  # the connection dropped while the batch was being written
    writer.gate.set()
    wait_for(lambda: client.ack_calls, 5)
    assert client.ack_calls[0][0] == 1 and client.acked == []  # asked for the old connection: dropped
    again = client.deliver(*payloads)  # the broker redelivers on the new connection
    wait_for(lambda: client.acked == again, 5)
    assert len(writer.lines) == 3 and w.counters["duplicates"] == 3  # stored once


def test_nothing_is_acked_until_the_batch_is_durable(worker):
    w, client, writer, _ = worker
    writer.failure = RuntimeError("a bug in the write path")
    mids = client.deliver((TOPIC, telemetry(0)), (TOPIC, telemetry(1)))
    wait_for(lambda: w.counters["batch_errors"] >= 1, 5)
    assert client.acked == []
    writer.failure = None  # fixed: the held batch is tried again, then acked
    wait_for(lambda: client.acked == mids, 10)
    assert len(writer.lines) == 2


def test_a_spooled_batch_is_durable_and_acked(worker):
    w, client, writer, _ = worker
    writer.failure = InfluxUnavailable("InfluxDB not reachable")
    mids = client.deliver((TOPIC, telemetry(0)))
    wait_for(lambda: client.acked == mids, 10)
    assert w.counters["spooled"] == 1 and writer.lines == []
    writer.failure = None
    wait_for(lambda: len(writer.lines) == 1, 10)  # replayed from the spool


def test_dead_letters_and_qos0_messages(worker):
    w, client, writer, dead = worker
    mids = client.deliver((TOPIC, b"{not json"), (contract.telemetry_topic("ghost-01"), telemetry(0)))
    wait_for(lambda: client.acked == mids, 5)  # stored as dead letters, so acked
    assert dead.counts() == {"malformed_json": 1, "unknown_device": 1}
    assert client.deliver((TOPIC, telemetry(7)), qos=0) == [0]
    wait_for(lambda: len(writer.lines) == 1, 5)
    assert 0 not in client.acked  # QoS 0 has nothing to ack


def test_stop_stores_and_acks_what_it_holds_and_nothing_after(tmp_path, registry):
    registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari"))
    settings = make_settings(tmp_path, ingest_batch_ms=60_000, ingest_receive_maximum=1000)
    writer = ScriptedWriter()
    w = IngestWorker(settings, registry, writer, DeadLetters(tmp_path / "dl.sqlite3"),
                     client_factory=lambda s, handler: FakeClient(handler))
    w.start()
    client = w.client
    mids = client.deliver(*[(TOPIC, telemetry(seq)) for seq in range(10)])
    time.sleep(0.3)
    assert writer.lines == []  # held: the batch timer is a minute away
    w.stop()
    assert client.acked == mids and len(writer.lines) == 10
    client.deliver((TOPIC, telemetry(10)))  # arrives while leaving: left to the broker
    time.sleep(0.1)
    assert client.acked == mids and len(writer.lines) == 10
    assert client.stopped_with == [None]  # the session stays for our return


def test_retained_status_is_stored_once_per_change(worker):
    w, client, writer, _ = worker
    online = contract.encode_status("online", fw="0.1.0", uptime_s=1)
    client.deliver((STATUS, online, True))  # a first session: the retained copy is news
    wait_for(lambda: len(writer.lines) == 1, 5)
    for n in range(10):  # reconnects: the broker resends the retained copy each time
        client.connect(session_present=True)
        client.deliver((STATUS, online, True))
        wait_for(lambda n=n: len(client.acked) == n + 2, 5)  # acked: the broker may forget it
    assert len(writer.lines) == 1 and w.counters["retained_skipped"] == 10
    client.deliver((STATUS, contract.encode_status("offline")))  # a live change is stored
    wait_for(lambda: len(writer.lines) == 2, 5)


class FirstWriteHeld(ScriptedWriter):
    """The first write waits for the gate (a slow answer); later ones go through at once."""

    def write(self, lines: list[str]) -> None:
        self.calls += 1
        if self.calls == 1:
            self.gate.wait(10)
        self.lines += [line for line in lines if not line.startswith("ingest_")]


def test_two_batches_are_written_at_once_and_acked_in_arrival_order(tmp_path, registry):
    registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari"))
    settings = make_settings(tmp_path, ingest_batch_ms=20, ingest_receive_maximum=10, ingest_stats_interval_s=3600)
    writer = FirstWriteHeld()
    writer.gate.clear()
    w = IngestWorker(settings, registry, writer, DeadLetters(tmp_path / "dl.sqlite3"),
                     client_factory=lambda s, handler: FakeClient(handler))
    w.start()
    try:
        client = w.client
        mids = client.deliver(*[(TOPIC, telemetry(seq)) for seq in range(10)])  # two batches of 5 (half the window)
        wait_for(lambda: len(writer.lines) == 5, 5)  # the second batch is written while the first waits
        time.sleep(0.2)
        assert client.acked == []  # but not acked before the first
        writer.gate.set()
        wait_for(lambda: client.acked == mids, 5)  # then both, in arrival order
        assert len(client.ack_calls) == 2 and len(writer.lines) == 10
    finally:
        writer.gate.set()
        w.stop()
