"""The worker's own discipline with a real Mosquitto and influxd: batches fit
the in-flight window, SIGTERM drains and acks what it holds, the registry
cache follows a device being registered, redeliveries and repeats and gaps
are told apart, counters come out as Prometheus text."""

import os
import re
import socket
import subprocess
import sys
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics, MetricsServer, prometheus_text, stats_lines
from ingest.worker import IngestWorker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.conftest import ROOT, make_settings
from tests.ingest.streaming import DEVICE_SECRET, Fleet, WorkerProcess, fleet_users, wait_until_stored
from tests.test_thin_path import wait_for


def device_client(port: int, device: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device)
    client.username_pw_set(device, DEVICE_SECRET)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, device: str, count: int, start_seq: int = 0) -> None:
    now = int(time.time() * 1000)
    infos = [client.publish(contract.telemetry_topic(device), contract.encode_telemetry(
        seq, [(now - 60_000 + seq, {"flow_lps": float(seq)})], "0.1.0"), qos=1) for seq in
        range(start_seq, start_seq + count)]
    for info in infos:
        info.wait_for_publish(10)


def count_water(influx_db) -> int:
    rows = influx_db.rows('SELECT count("flow_lps") FROM "water"')
    return rows[0]["count"] if rows else 0


@pytest.fixture
def fleet(make_mosquitto, registry):
    users = fleet_users(2)
    for device in users:
        registry.add(DeviceNew(id=device, kind="water", district="tanjungpinang-barat"))
    return make_mosquitto(users=users | {"ghost-01": users["wtr-0000"]}), registry


def test_batches_fit_the_in_flight_window(fleet, influx_db, tmp_path):
    mosquitto, registry = fleet
    # A window of 10 and a 5 s batch timer: a worker that waited for the timer
    # with the window full would need 20 rounds of 5 s for 200 messages.
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db,
                             ingest_receive_maximum=10, ingest_batch_ms=5000)
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db),
                          DeadLetters(tmp_path / "dl.sqlite3"))
    worker.start()
    try:
        wait_for(lambda: worker.counters["mqtt_connects"] >= 1, 10)
        client = device_client(mosquitto.port, "wtr-0000")
        started = time.monotonic()
        publish_all(client, "wtr-0000", 200)
        wait_for(lambda: count_water(influx_db) == 200, 15, 0.1)
        assert time.monotonic() - started < 8
        client.disconnect()
    finally:
        worker.stop()


def test_sigterm_drains_and_acks_what_it_holds(fleet, influx_db, tmp_path):
    mosquitto, registry = fleet
    worker = WorkerProcess(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db, registry.path,
                           CITY_INGEST_BATCH_MS="60000", CITY_INGEST_RECEIVE_MAXIMUM="1000").start()
    client = device_client(mosquitto.port, "wtr-0001")
    publish_all(client, "wtr-0001", 100)
    wait_for(lambda: worker.metrics().get("ingest_mqtt_connects_total") and count_water(influx_db) == 0, 5)
    time.sleep(0.5)  # held: the batch timer is a minute away
    assert count_water(influx_db) == 0
    started = time.monotonic()
    assert worker.stop() == 0
    assert time.monotonic() - started < 10
    assert count_water(influx_db) == 100  # stored before it left
    worker.start()  # and acked: nothing comes back to the restarted worker
    time.sleep(1.5)
    assert worker.metrics().get("ingest_received_total", 0) == 0
    assert worker.stop() == 0
    client.disconnect()


def test_sigterm_mid_stream_leaves_promptly_and_loses_nothing(fleet, influx_db, tmp_path):
    mosquitto, registry = fleet
    worker = WorkerProcess(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db, registry.path).start()
    stream = Fleet(mosquitto, ["wtr-0000", "wtr-0001"], rate_hz=50).start()
    time.sleep(2)
    started = time.monotonic()
    assert worker.stop() == 0  # what arrives while draining is left to the broker, so the drain ends
    assert time.monotonic() - started < 5
    time.sleep(1)
    worker.start()
    time.sleep(1)
    stream.stop()
    wait_until_stored(influx_db, stream, timeout_s=20)
    assert worker.stop() == 0


def test_registry_changes_reach_the_worker(fleet, influx_db, tmp_path):
    mosquitto, registry = fleet
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db)
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db), dead)
    worker.start()
    try:
        wait_for(lambda: worker.counters["mqtt_connects"] >= 1, 10)
        ghost = device_client(mosquitto.port, "ghost-01")
        publish_all(ghost, "ghost-01", 1)
        wait_for(lambda: dead.counts().get("unknown_device") == 1, 10)
        registry.add(DeviceNew(id="ghost-01", kind="water", district="bukit-bestari"))
        time.sleep(1.2)  # the cache checks the registry's version every second
        publish_all(ghost, "ghost-01", 1, start_seq=1)
        rows = wait_for(lambda: influx_db.rows("SELECT * FROM \"water\" WHERE \"device\" = 'ghost-01'"), 10)
        assert [r["district"] for r in rows] == ["bukit-bestari"]
        registry.update("ghost-01", state="retired")
        time.sleep(1.2)
        publish_all(ghost, "ghost-01", 1, start_seq=2)
        wait_for(lambda: dead.counts().get("retired_device") == 1, 10)
        ghost.disconnect()
    finally:
        worker.stop()


def test_redelivery_repeat_and_gap_are_told_apart(registry):
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    metrics = Metrics("ingest-0")
    decoder, out = Decoder(registry, metrics), Decoded()
    now = int(time.time() * 1000)
    topic = contract.telemetry_topic("wtr-0001")
    first = contract.encode_telemetry(5, [(now, {"flow_lps": 1.0})], "0.1.0", boot=77)
    decoder.decode(topic, first, now, out)
    decoder.decode(topic, first, now, out)  # a redelivery: counted, not stored twice
    decoder.decode(topic, contract.encode_telemetry(5, [(now + 1, {"flow_lps": 2.0})], "0.1.0", boot=77), now, out)
    decoder.decode(topic, contract.encode_telemetry(9, [(now + 2, {"flow_lps": 3.0})], "0.1.0", boot=77), now, out)
    assert len(out.lines) == 2
    assert [r[0] for r in out.rejects] == ["repeated_seq"]
    assert metrics.counters["duplicates"] == 1 and metrics.counters["rejected_repeated_seq"] == 1
    assert metrics.counters["sequence_gaps"] == 3 and metrics.gaps_by_device == {"wtr-0001": 3}


def test_counters_as_prometheus_text_and_line_protocol():
    metrics = Metrics("ingest-1")
    metrics.inc("received", 7)
    metrics.inc("rejected_out_of_bounds", 2)
    metrics.gap("wtr-0001", 3)
    metrics.set("lag_seconds", 1.5)
    metrics.observe_write(0.02)
    metrics.observe_write(3.0)
    server = MetricsServer(metrics, 0).start()
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
        assert httpx.get(f"http://127.0.0.1:{server.port}/other").status_code == 404
    finally:
        server.stop()
    assert text == prometheus_text(metrics)
    sample = re.compile(r'^[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# TYPE ") or sample.match(line), line
    assert 'ingest_received_total{worker="ingest-1"} 7' in text
    assert 'ingest_rejected_total{worker="ingest-1",reason="out_of_bounds"} 2' in text
    assert 'ingest_device_sequence_gaps_total{worker="ingest-1",device="wtr-0001"} 3' in text
    assert 'ingest_write_seconds_bucket{worker="ingest-1",le="0.025"} 1' in text
    assert 'ingest_write_seconds_count{worker="ingest-1"} 2' in text
    stats, device_stats = stats_lines(metrics, 1000)
    assert stats.startswith("ingest_stats,worker=ingest-1 ") and "received=7i" in stats and stats.endswith(" 1000")
    assert device_stats == "ingest_device_stats,device=wtr-0001,worker=ingest-1 sequence_gaps=3i 1000"


@pytest.mark.parametrize("key,value", [("CITY_INGEST_RECEIVE_MAXIMUM", "5"), ("CITY_INGEST_METRICS_PORT", "99999"),
                                       ("CITY_INGEST_SPOOL_MAX_MB", "lots"), ("CITY_RAW_RETENTION", "1y"),
                                       ("CITY_INGEST_WORKERS", "0"), ("CITY_INGEST_RETRY_MAX_S", "-1")])
def test_bad_configuration_stops_the_start_and_names_the_key(tmp_path, key, value):
    env = dict(os.environ, CITY_ENVIRONMENT="test", CITY_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT), **{key: value})
    done = subprocess.run([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert "bad configuration" in done.stderr and key.removeprefix("CITY_").lower() in done.stderr


def test_a_busy_metrics_port_stops_the_start(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = dict(os.environ, CITY_ENVIRONMENT="test", CITY_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT),
                   CITY_INGEST_METRICS_PORT=str(busy.getsockname()[1]))
        done = subprocess.run([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=30)
    assert done.returncode == 1 and "CITY_INGEST_METRICS_PORT" in done.stderr
