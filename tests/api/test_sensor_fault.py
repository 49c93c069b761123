"""Sensor-fault alerts through the real pipeline: a registered meter publishes
impossible values over a real Mosquitto, the real ingest worker (`python -m
ingest`) rejects them into its dead-letter store, and the API raises one
sensor_fault alert naming the reason and quoting the values; fewer than the
threshold raise nothing, malformed messages raise their own alert, and a
quiet window clears it."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import contract
from telemetry_shared import broker
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.servers import free_port
from tests.api.harness import wait_for
from tests.conftest import SERVICE_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
DEVICE_PASSWORD = "meter-password-0123"


@pytest.fixture
def pipeline(tmp_path, mosquitto, shared_influxd, influx_db, make_api):
    data_dir = tmp_path / "var"
    registry = Registry(data_dir / "registry.sqlite3")
    for device, kind in (("pwr-0001", "power"), ("pwr-0002", "power"), ("wtr-0009", "water")):
        registry.add(DeviceNew(id=device, kind=kind, district="bukit-bestari"))
        mosquitto.set_user(device, broker.hash_password(DEVICE_PASSWORD))
    registry.close()
    env = os.environ | {"CITY_DATA_DIR": str(data_dir), "CITY_MQTT_PORT": str(mosquitto.port),
                        "CITY_MQTT_USER": broker.service_user("ingest", 0), "CITY_MQTT_PASSWORD": SERVICE_PASSWORD,
                        "CITY_INFLUX_URL": shared_influxd.url, "CITY_INFLUX_DB": influx_db.db,
                        "CITY_INGEST_METRICS_PORT": str(free_port())}
    with open(tmp_path / "ingest.log", "wb") as log:
        ingest = subprocess.Popen([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    api = make_api(data_dir=data_dir, api_sensor_fault_check_s=0.2, api_sensor_fault_window_s=5.0)
    yield api
    ingest.terminate()
    ingest.wait(30)


def device(port: int, device_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(device_id, DEVICE_PASSWORD)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def send(client: mqtt.Client, device_id: str, seq: int, values: dict) -> None:
    payload = contract.encode_telemetry(seq, [(int(time.time() * 1000), values)], "1.0.0")
    client.publish(contract.telemetry_topic(device_id), payload, qos=1).wait_for_publish(5)


def board(api) -> list[dict]:
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.keys['operator']}"}) as c:
        return c.get("/alerts", params={"limit": 100}).json()["data"]


def sensor_faults(api) -> list[dict]:
    return [a for a in board(api) if a["rule"] == "sensor_fault"]


def test_five_impossible_readings_raise_one_sensor_fault_alert(pipeline, mosquitto, influx_db):
    api = pipeline
    meter = device(mosquitto.port, "pwr-0001")
    seq = 0
    deadline = time.monotonic() + 30
    while not influx_db.rows('SELECT count("voltage_v") FROM "power"'):  # until ingest has subscribed
        assert time.monotonic() < deadline, "ingest stored nothing"
        send(meter, "pwr-0001", seq, {"voltage_v": 229.5})  # a good reading
        seq += 1
        time.sleep(0.5)
    for volts in (600.0, 612.5, 605.0, 640.0):
        send(meter, "pwr-0001", seq, {"voltage_v": volts})
        seq += 1
    wait_for(lambda: len(api.services.alerts.sensor_faults.recent.get("pwr-0001", ())) == 4, timeout_s=20)
    time.sleep(0.6)
    assert sensor_faults(api) == []  # four is not yet "more than a few"

    send(meter, "pwr-0001", seq, {"voltage_v": 650.0})
    faults = wait_for(lambda: sensor_faults(api), timeout_s=20)
    assert len(faults) == 1
    fault = faults[0]
    assert (fault["device"], fault["kind"], fault["metric"], fault["state"]) == ("pwr-0001", "power", "voltage_v",
                                                                                 "active")
    assert "out of bounds ×5" in fault["explanation"]
    for volts in ("600.0", "612.5", "605.0", "640.0", "650.0"):
        assert volts in fault["explanation"]
    assert "bounds are 0 to 500 V" in fault["explanation"] and fault["observed"] == 650.0
    # an Indonesian reader (the control room, an e-mail) gets the same facts in Indonesian
    from telemetry_shared.alert_text import render

    indonesian = render(fault["message"], "id", "Asia/Jakarta")
    assert indonesian.startswith("5 bacaan atau pesan dari pwr-0001 ditolak dalam ")
    assert "di luar batas ×5" in indonesian and "tegangan yang ditolak: 600.0, 612.5" in indonesian
    assert "batasnya 0,0 V sampai 500,0 V" in indonesian and "bounds" not in indonesian

    for n in range(1, 4):  # it goes on: the same alert is updated, no second one
        send(meter, "pwr-0001", seq + n, {"voltage_v": 700.0 + n})
    wait_for(lambda: "×8" in sensor_faults(api)[0]["explanation"], timeout_s=20)
    assert len(sensor_faults(api)) == 1

    # whole messages that are not even JSON, from another device: their own alert, naming the reason
    other = device(mosquitto.port, "pwr-0002")
    for _ in range(5):
        other.publish(contract.telemetry_topic("pwr-0002"), b"{volts: 600", qos=1).wait_for_publish(5)
    wait_for(lambda: len(sensor_faults(api)) == 2, timeout_s=20)
    malformed = next(a for a in sensor_faults(api) if a["device"] == "pwr-0002")
    assert "malformed json ×5" in malformed["explanation"]
    assert "JSON rusak ×5" in render(malformed["message"], "id", "Asia/Jakarta")

    # a window (5 s here, 10 min by default) without rejections clears both
    wait_for(lambda: {a["state"] for a in sensor_faults(api)} == {"cleared"}, timeout_s=20)
    assert len(sensor_faults(api)) == 2
    # and Grafana's annotations show them, as they show analytics' alerts
    annotations = influx_db.rows('SELECT "state", "id", "device" FROM "alerts" WHERE "rule" = \'sensor_fault\'')
    assert {(row["device"], row["state"]) for row in annotations} >= {
        ("pwr-0001", "active"), ("pwr-0001", "cleared"), ("pwr-0002", "active"), ("pwr-0002", "cleared")}
    meter.disconnect()
    other.disconnect()
