"""The thin path, end to end with real parts: an edge agent under the real
`micropython` binary publishes to Mosquitto, an ingest worker writes to
influxd, and InfluxQL reads the readings back with their tags."""

import json
import os
import subprocess
import time

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_shared import broker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.conftest import make_settings, wait_for


def test_micropython_agent_to_influxdb(micropython_bin, edge_dir, make_mosquitto, influx_db, registry, tmp_path):
    secret = broker.new_secret()
    mosquitto = make_mosquitto(users={"wtr-0001": broker.hash_password(secret)})
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari", lat=0.92, lon=104.45))
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db)
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db),
                          DeadLetters(tmp_path / "dl.sqlite3"))
    worker.start()
    try:
        # a reading published before the worker's shared subscription exists has nobody to go to
        assert worker.subscribed.wait(10), "the worker never got its subscriptions"
        config = {"device_id": "wtr-0001", "kind": "water", "server": "127.0.0.1", "port": mosquitto.port,
                  "password": secret, "interval_ms": 100, "batch_size": 3, "tls": False}
        (edge_dir / "config.json").write_text(json.dumps(config))
        started_ms = int(time.time() * 1000)
        done = subprocess.run([micropython_bin, "-m", "edge.main", "config.json", "3"], cwd=edge_dir,
                              env=dict(os.environ, MICROPYPATH=str(edge_dir)), capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        rows = wait_for(lambda: len(r := influx_db.rows('SELECT * FROM "water"')) >= 9 and r, timeout_s=20)
        status = wait_for(lambda: influx_db.rows('SELECT * FROM "device_status"'), timeout_s=20)
    finally:
        worker.stop()
    assert len(rows) == 9
    assert {r["device"] for r in rows} == {"wtr-0001"}
    assert {r["district"] for r in rows} == {"bukit-bestari"}
    assert sorted({r["seq"] for r in rows}) == [0, 1, 2]
    times = [r["time"] for r in rows]
    assert times == sorted(times) and started_ms - 1000 <= times[0] <= times[-1] <= int(time.time() * 1000)
    for row in rows:
        for metric in ("flow_lps", "pressure_bar", "chlorine_mgl"):
            _, _, lo, hi = contract.METRICS[metric]
            assert lo <= row[metric] <= hi
    # The birth message (online, with the device's health) and the goodbye (offline) are device_status points.
    assert [r["online"] for r in status][:1] == [1.0] and status[0]["device"] == "wtr-0001"
    assert status[0]["mem_free"] > 0 and status[0]["kind"] == "water"
    assert registry.get("wtr-0001").state == "active"


def test_unknown_device_and_bad_payload_are_dead_lettered(make_mosquitto, influx_db, registry, tmp_path):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    secret = broker.new_secret()
    mosquitto = make_mosquitto(users={"pwr-0001": broker.hash_password(secret),
                                      "ghost-01": broker.hash_password(secret)})
    registry.add(DeviceNew(id="pwr-0001", kind="power", district="tanjungpinang-kota"))
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db)
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db), dead)
    worker.start()
    assert worker.subscribed.wait(10), "the worker never got its subscriptions"
    now = int(time.time() * 1000)
    try:
        for user, payload in [
            ("pwr-0001", b"{not json"),
            ("ghost-01", contract.encode_telemetry(0, [(now, {"voltage_v": 230.0})], "x")),
            ("pwr-0001", contract.encode_telemetry(1, [(now, {"voltage_v": 231.0, "frequency_hz": 99.0})], "x")),
        ]:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
            client.username_pw_set(user, secret)
            client.connect("127.0.0.1", mosquitto.port)
            client.loop_start()
            client.publish(contract.telemetry_topic(user), payload, qos=1).wait_for_publish(10)
            client.disconnect()
            client.loop_stop()
        counts = wait_for(lambda: len(c := dead.counts()) == 3 and c, timeout_s=20)
        rows = wait_for(lambda: influx_db.rows('SELECT * FROM "power"'))
    finally:
        worker.stop()
    assert counts == {"malformed_json": 1, "unknown_device": 1, "out_of_bounds": 1}
    assert len(rows) == 1 and rows[0]["voltage_v"] == 231.0 and rows[0].get("frequency_hz") is None
