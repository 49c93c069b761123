"""What a device's life does to ingest, with a real Mosquitto and influxd:
reboots (with and without a boot id) are never refused, a device that
publishes the moment it is registered is never unknown, backfill stays
marked as history in InfluxDB, a retained status is stored once however
often the worker reconnects, and a retired device leaves no dead letter."""

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics
from ingest.worker import IngestWorker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.conftest import make_settings, wait_for
from tests.ingest.streaming import DEVICE_SECRET, fleet_users

DEVICE = "wtr-0000"


def message(seq: int, t_ms: int, boot: int | None = None, hist: bool = False, value: float = 1.0) -> bytes:
    return contract.encode_telemetry(seq, [(t_ms, {"flow_lps": value})], "0.2.0", hist=hist, boot=boot)


# ------------------------------------------------------------ the decoder alone (no servers)


@pytest.fixture
def decoder(registry):
    registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari"))
    metrics = Metrics("ingest-0")
    return Decoder(registry, metrics), metrics


def test_reboots_with_a_boot_id_are_never_refused(decoder):
    dec, metrics = decoder
    out, now, topic = Decoded(), int(time.time() * 1000), contract.telemetry_topic(DEVICE)
    for boot in range(5):  # five boots within a minute, each counting from seq 0
        for seq in range(6):
            dec.decode(topic, message(seq, now - 60_000 + boot * 10 + seq, boot=1000 + boot), now, out)
    assert out.rejects == [] and len(out.lines) == 30
    assert metrics.counters["sequence_restarts"] == 4 and metrics.counters["sequence_gaps"] == 0
    dec.decode(topic, message(5, now - 60_000 + 45, boot=1004), now, out)  # a redelivery: skipped
    dec.decode(topic, message(5, now, boot=1004, value=9.0), now, out)  # same boot and seq, other content
    assert metrics.counters["duplicates"] == 1 and [r[0] for r in out.rejects] == ["repeated_seq"]


def test_reboots_of_older_firmware_without_a_boot_id_are_stored(decoder):
    dec, metrics = decoder
    out, now, topic = Decoded(), int(time.time() * 1000), contract.telemetry_topic(DEVICE)
    for boot in range(3):
        for seq in range(6):
            dec.decode(topic, message(seq, now - 60_000 + boot * 10 + seq), now, out)
    assert out.rejects == [] and len(out.lines) == 18
    assert metrics.counters["sequence_restarts"] == 2
    dec.decode(topic, message(5, now - 60_000 + 25), now, out)  # still a redelivery when the bytes match
    assert metrics.counters["duplicates"] == 1 and len(out.lines) == 18


def test_every_point_says_whether_it_is_history(decoder):
    dec, _ = decoder
    out, now, topic = Decoded(), int(time.time() * 1000), contract.telemetry_topic(DEVICE)
    dec.decode(topic, message(0, now - 5000), now, out)
    dec.decode(topic, message(1, now - 9000, hist=True), now, out)
    assert "hist=false" in out.lines[0] and "hist=true" not in out.lines[0]
    assert "hist=true" in out.lines[1] and "hist=false" not in out.lines[1]


def test_the_will_of_a_device_retired_a_moment_ago_is_the_retired_devices(decoder, registry):
    # the worker's device cache is read at most once a second: a will that follows the retirement within it
    # must still be seen as the retired device's (counted), not stored as an active device's status
    dec, metrics = decoder
    dec.begin_batch()  # the cache now holds the device as active
    registry.update(DEVICE, state="retired")
    dec.begin_batch()  # the next batch, within the cache's second
    out = Decoded()
    dec.decode(contract.status_topic(DEVICE), contract.encode_status("offline"), int(time.time() * 1000), out)
    assert out.lines == [] and out.rejects == []
    assert metrics.counters["status_of_retired_device"] == 1


# ------------------------------------------------------------ with Mosquitto and influxd


@pytest.fixture
def city(make_mosquitto, registry, influx_db, tmp_path):
    users = fleet_users(3)
    registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari"))
    mosquitto = make_mosquitto(users=users)
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db, ingest_batch_ms=50)
    workers: list[IngestWorker] = []

    def worker() -> IngestWorker:
        w = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db), dead)
        w.start()
        workers.append(w)
        assert w.subscribed.wait(10)
        return w

    yield mosquitto, registry, influx_db, dead, worker
    for w in workers:
        if not w.stopping.is_set():
            w.stop()


def device(port: int, device_id: str, will: bool = False) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(device_id, DEVICE_SECRET)
    if will:
        client.will_set(contract.status_topic(device_id), contract.encode_status("offline"), qos=1, retain=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def send(client: mqtt.Client, topic: str, payloads: list[bytes], retain: bool = False) -> None:
    for info in [client.publish(topic, p, qos=1, retain=retain) for p in payloads]:
        info.wait_for_publish(10)


def count(influx, where: str = "") -> int:
    rows = influx.rows(f'SELECT count("flow_lps") FROM "water" {where}')
    return rows[0]["count"] if rows else 0


def test_reboots_and_a_device_that_publishes_as_it_is_registered_lose_nothing(city):
    mosquitto, registry, influx, dead, worker = city
    worker()
    now = int(time.time() * 1000)
    client = device(mosquitto.port, DEVICE)
    topic = contract.telemetry_topic(DEVICE)
    for boot in range(5):  # five reboots in a minute: seq from 0 each time, a new boot id
        send(client, topic, [message(seq, now - 50_000 + boot * 100 + seq, boot=boot + 7) for seq in range(10)])
    for boot in range(2):  # older firmware: no boot id at all
        send(client, topic, [message(seq, now - 40_000 + boot * 100 + seq) for seq in range(10)])
    # A device registered and publishing at once: the cache must not refuse it.
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="tanjungpinang-kota"))
    fresh = device(mosquitto.port, "wtr-0001")
    send(fresh, contract.telemetry_topic("wtr-0001"), [message(seq, now - 1000 + seq) for seq in range(3)])
    wait_for(lambda: count(influx) == 73, 15)
    assert dead.counts() == {}
    for c in (client, fresh):
        c.disconnect()
        c.loop_stop()


def test_backfill_stays_marked_as_history(city):
    mosquitto, _, influx, _, worker = city
    worker()
    now = int(time.time() * 1000)
    client = device(mosquitto.port, DEVICE)
    topic = contract.telemetry_topic(DEVICE)
    send(client, topic, [message(0, now - 3_600_000, hist=True), message(1, now - 3_599_000, hist=True),
                         message(2, now - 1000)])
    wait_for(lambda: count(influx) == 3, 10)
    assert count(influx, 'WHERE "hist" = true') == 2 and count(influx, 'WHERE "hist" = false') == 1
    client.disconnect()
    client.loop_stop()


def test_retained_status_stored_once_and_retire_leaves_no_dead_letter(city):
    mosquitto, registry, influx, dead, worker = city
    w = worker()
    client = device(mosquitto.port, DEVICE, will=True)
    send(client, contract.status_topic(DEVICE), [contract.encode_status("online", fw="0.2.0", uptime_s=3)],
         retain=True)

    def statuses() -> int:
        rows = influx.rows('SELECT count("online") FROM "device_status"')
        return rows[0]["count"] if rows else 0

    wait_for(lambda: statuses() == 1, 10)
    for _ in range(10):  # ten worker reconnects (a restart each time): the retained copy is not stored again
        w.stop()
        w = worker()
        time.sleep(0.2)
    time.sleep(0.5)
    assert statuses() == 1
    # Retire: the registry says so, then the broker takes the device's session over and its
    # retained last will ("offline") arrives. Expected, not a dead letter.
    registry.update(DEVICE, state="retired")
    client._sock.close()  # an unclean end: the broker publishes the will
    wait_for(lambda: w.counters["status_of_retired_device"] >= 1, 10)
    w.stop()
    w = worker()  # and the retained will is not a dead letter on a reconnect either
    time.sleep(0.5)
    assert dead.counts() == {} and statuses() == 1
    client.loop_stop()
