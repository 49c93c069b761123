"""The streaming engine: one incident, one alert (opened, updated, cleared),
history never alarms, silence and clock jumps are noticed, alerts reach
InfluxDB and, through a real Mosquitto, an MQTT subscriber."""

import random
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from analytics.service import EngineService, mqtt_user
from edge import contract
from telemetry_shared import broker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.conftest import SERVICE_PASSWORD, make_settings

START = 1_767_225_600_000  # 2026-01-01 00:00 UTC
STEP = 10_000


def voltage_batches(count: int, start_ms: int = START, sag_at: range = range(0), hist: bool = False, seq0: int = 0,
                    seed: int = 1) -> list[tuple[int, bytes]]:
    """One 10-second sample per message: (time, payload)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        t = start_ms + i * STEP
        volts = 190.0 if i in sag_at else 229.0 + rng.gauss(0, 0.8)
        values = {"voltage_v": round(volts, 2), "frequency_hz": round(50 + rng.gauss(0, 0.01), 3)}
        out.append((t, contract.encode_telemetry(seq0 + i, [(t, values)], "1.0", hist=hist)))
    return out


@pytest.fixture
def engine_parts(registry, influx_db):
    registry.add(DeviceNew(id="pwr-0001", kind="power", district="tanjungpinang-kota"))
    registry.add(DeviceNew(id="pwr-0002", kind="power", district="bukit-bestari"))
    sent: list[tuple[str, bytes]] = []
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    engine = AnalyticsEngine(registry, writer, lambda topic, raw: sent.append((topic, raw)),
                             EngineParams(buffer_samples=64))
    yield engine, sent, influx_db
    writer.close()


def feed(engine: AnalyticsEngine, device: str, batches, lag_ms: int = 200) -> list[dict]:
    messages = []
    for t, raw in batches:
        engine.ingest(device, raw, t + lag_ms)
        messages += engine.process(now_ms=t + lag_ms)
    return messages


def test_a_voltage_sag_is_one_alert_opened_then_cleared(engine_parts):
    engine, sent, influx = engine_parts
    messages = feed(engine, "pwr-0001", voltage_batches(120, sag_at=range(80, 90)))
    states = [m["state"] for m in messages]
    assert states[0] == "active" and states[-1] == "cleared" and set(states[1:-1]) <= {"active"}
    opened, cleared = messages[0], messages[-1]
    # Opened, re-published at most once a minute while it lasts, cleared.
    assert len(messages) <= 3 + (cleared["updated_ms"] - opened["updated_ms"]) // 60_000
    assert {m["id"] for m in messages} == {opened["id"]}
    assert opened["rule"] == "voltage_out_of_range" and opened["severity"] == "critical"
    assert opened["metric"] == "voltage_v" and opened["observed"] == 190.0
    assert opened["kind"] == "power" and opened["district"] == "tanjungpinang-kota"
    assert opened["started_ms"] == START + 80 * STEP
    assert "below the minimum 207" in opened["explanation"] and "EN 50160" in opened["explanation"]
    assert cleared["updated_ms"] > opened["updated_ms"]
    # What went out on MQTT is exactly what the API would accept.
    assert [t for t, _ in sent] == [contract.alert_topic("pwr-0001")] * len(messages)
    assert [contract.decode_alert(raw)["state"] for _, raw in sent] == states
    rows = influx.rows('SELECT * FROM "alerts"')
    assert [r["state"] for r in rows] == states
    assert {(r["rule"], r["severity"], r["device"], r["district"], r["kind"], r["metric"]) for r in rows} \
        == {("voltage_out_of_range", "critical", "pwr-0001", "tanjungpinang-kota", "power", "voltage_v")}
    assert rows[0]["id"] == opened["id"] and rows[0]["explanation"] == opened["explanation"]


def test_two_metrics_of_one_device_are_one_incident(engine_parts):
    """An outage drops voltage and frequency together: one alert id, both metrics named."""
    engine, _, _ = engine_parts
    rng = random.Random(5)
    batches = []
    for i in range(110):
        t = START + i * STEP
        down = 70 <= i < 80
        values = {"voltage_v": 150.0 if down else round(229 + rng.gauss(0, 0.8), 2),
                  "frequency_hz": 48.0 if down else round(50 + rng.gauss(0, 0.01), 3)}
        batches.append((t, contract.encode_telemetry(i, [(t, values)], "1.0")))
    messages = feed(engine, "pwr-0001", batches)
    assert len({m["id"] for m in messages}) == 1
    assert messages[0]["state"] == "active" and messages[-1]["state"] == "cleared"
    assert any("Affected: frequency, voltage." in m["explanation"] for m in messages)
    assert any(m["message"]["params"].get("affected") == ["frequency_hz", "voltage_v"] for m in messages)


def test_normal_data_raises_nothing(engine_parts):
    engine, sent, _ = engine_parts
    assert feed(engine, "pwr-0001", voltage_batches(200)) == []
    assert sent == []


def test_history_never_opens_a_live_alert(engine_parts):
    engine, sent, influx = engine_parts
    backfill = voltage_batches(120, sag_at=range(80, 100), hist=True)
    for t, raw in backfill:
        engine.ingest("pwr-0001", raw, t + 3_600_000)  # an hour late, as an offline device catches up
    assert engine.process(now_ms=START + 4_000_000) == []
    assert engine.learnt.blocks["voltage_v"].count(0) == 64  # the history did fill the buffer (64 samples long)
    assert sent == [] and influx.rows('SELECT * FROM "alerts"') == []


def test_a_long_incident_is_updated_not_repeated(engine_parts):
    engine, _, _ = engine_parts
    messages = feed(engine, "pwr-0001", voltage_batches(260, sag_at=range(60, 130)))
    ids = {m["id"] for m in messages}
    assert len(ids) == 1
    states = [m["state"] for m in messages]
    assert states[0] == "active" and states[-1] == "cleared" and set(states[1:-1]) <= {"active"}
    # Re-published at most every update_every_s (60 s = 6 samples) while it lasts.
    duration_ms = messages[-1]["updated_ms"] - messages[0]["updated_ms"]
    assert duration_ms >= 70 * STEP and len(messages) <= 3 + duration_ms // 60_000


def test_silence_opens_and_clears(engine_parts):
    engine, sent, _ = engine_parts
    batches = voltage_batches(60)
    feed(engine, "pwr-0001", batches)
    last = batches[-1][0]
    assert engine.check_silence(now_ms=last + 2 * STEP) == []
    opened = engine.check_silence(now_ms=last + 10 * STEP)
    assert [(m["rule"], m["state"], m["metric"]) for m in opened] == [("silent", "active", "")]
    assert "No data from this device since" in opened[0]["explanation"]
    later = engine.check_silence(now_ms=last + 20 * STEP)  # still the same incident, re-published
    assert [(m["id"], m["state"]) for m in later] == [(opened[0]["id"], "active")]
    feed(engine, "pwr-0001", voltage_batches(10, start_ms=last + 21 * STEP, seq0=60))
    cleared = []
    for k in range(20):  # clears after clear_samples calm checks in a row
        cleared += engine.check_silence(now_ms=last + 31 * STEP + k * 100)
    assert {m["id"] for m in cleared} == {opened[0]["id"]}  # no new incident
    assert [(m["rule"], m["state"]) for m in cleared][-1] == ("silent", "cleared")


def test_a_clock_jump_is_noticed(engine_parts):
    engine, _, _ = engine_parts
    feed(engine, "pwr-0002", voltage_batches(60))
    # From now on the device stamps its readings 20 minutes in the past; they still arrive on time.
    skew = 1_200_000
    skewed = voltage_batches(20, start_ms=START + 60 * STEP - skew, seq0=60)
    messages = feed(engine, "pwr-0002", skewed, lag_ms=skew + 200)
    assert [(m["rule"], m["state"], m["metric"]) for m in messages][:1] == [("clock_offset", "active", "")]
    assert len({m["id"] for m in messages}) == 1
    assert "clock jumped" in messages[0]["explanation"]
    assert engine.learnt.blocks["voltage_v"].rejected_out_of_order == 20  # the past does not rewrite the buffer


def test_bad_messages_and_unknown_devices_are_counted_not_fatal(engine_parts):
    engine, sent, _ = engine_parts
    engine.ingest("pwr-0001", b"{not json", START)
    engine.ingest("ghost-01", contract.encode_telemetry(0, [(START, {"voltage_v": 1.0})], "x"), START)
    engine.ingest("pwr-0001", b"x" * 100_000, START)
    engine.ingest("pwr-0001", contract.encode_telemetry(0, [(START, {"voltage_v": 1e9})], "x"), START)
    assert engine.process(now_ms=START) == []
    assert engine.counters["rejected_malformed_json"] == 1
    assert engine.counters["unknown_device"] == 1
    assert engine.counters["rejected_oversized"] == 1
    assert sent == []


def test_settings_choose_the_analytics_account(tmp_path):
    assert mqtt_user(make_settings(tmp_path)) == "svc-analytics-0"  # the default CITY_MQTT_USER is ingest's
    assert mqtt_user(make_settings(tmp_path, mqtt_user="svc-analytics-3")) == "svc-analytics-3"
    assert mqtt_user(make_settings(tmp_path, analytics_mqtt_user="svc-analytics-1")) == "svc-analytics-1"


def test_service_end_to_end_over_mosquitto(make_mosquitto, registry, influx_db, tmp_path):
    """A device publishes a sag; a subscriber with the API's account receives one decodable alert."""
    secret = broker.new_secret()
    mosquitto = make_mosquitto(users={"pwr-0009": broker.hash_password(secret)})
    registry.add(DeviceNew(id="pwr-0009", kind="power", district="tanjungpinang-barat"))
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db,
                             mqtt_user="svc-analytics-0")
    service = EngineService(settings, registry, V1Writer(settings.influx_url, settings.influx_db),
                            EngineParams(buffer_samples=64, batch_ms=100, silence_check_s=3600))
    received: list[dict] = []
    subscribed = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-api-0", protocol=mqtt.MQTTv5)
    listener.username_pw_set("svc-api-0", SERVICE_PASSWORD)
    listener.on_connect = lambda c, *a: c.subscribe(contract.ALERTS_SUB, qos=1)
    listener.on_subscribe = lambda *a: subscribed.set()
    listener.on_message = lambda c, u, m: received.append(contract.decode_alert(m.payload))
    listener.connect("127.0.0.1", mosquitto.port)
    listener.loop_start()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pwr-0009", protocol=mqtt.MQTTv311)
    device.username_pw_set("pwr-0009", secret)
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    service.start()
    try:
        assert subscribed.wait(10) and service.connected.wait(10)
        now = int(time.time() * 1000) - 100 * STEP
        for _t, raw in voltage_batches(90, start_ms=now, sag_at=range(50, 56)):
            device.publish(contract.telemetry_topic("pwr-0009"), raw, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(received) < 2:
            time.sleep(0.1)
    finally:
        service.stop()
        device.loop_stop()
        listener.loop_stop()
    assert [(a["state"], a["rule"], a["device"]) for a in received] == [
        ("active", "voltage_out_of_range", "pwr-0009"), ("cleared", "voltage_out_of_range", "pwr-0009")]
    assert len({a["id"] for a in received}) == 1
    assert len(influx_db.rows('SELECT * FROM "alerts"')) == 2
    assert service.engine.counters["errors"] == 0


def test_a_new_leak_raises_the_minimum_night_flow(registry):
    """Five days of a district meter at 10-minute readings; from the fifth night on, 2 L/s more."""
    registry.add(DeviceNew(id="wtr-0007", kind="water", district="bukit-bestari"))
    sent: list[tuple[str, bytes]] = []
    engine = AnalyticsEngine(registry, None, lambda topic, raw: sent.append((topic, raw)),
                             EngineParams(buffer_samples=256))
    rng = random.Random(9)
    local_midnight = START - 7 * 3_600_000  # 2026-01-01 00:00 in UTC+7
    messages = []
    for day in range(6):
        samples = []
        for k in range(144):
            t = local_midnight + day * 86_400_000 + k * 600_000
            hour = k / 6
            demand = 4 + 20 * max(0.0, 1 - abs(hour - 8) / 4) + 15 * max(0.0, 1 - abs(hour - 19) / 3)
            leak = 2.0 if day >= 4 else 0.0
            samples.append((t, {"flow_lps": round(demand + leak + rng.gauss(0, 0.1), 2)}))
        for first in (0, 72):
            raw = contract.encode_telemetry(day * 2 + first // 72, samples[first:first + 72], "1.0")
            engine.ingest("wtr-0007", raw, samples[first + 71][0] + 1000)
        engine.process(now_ms=samples[-1][0] + 1000)
        # Checked at 05:00 local, once that day's night window (02:00-04:00) has closed.
        messages += engine.check_night_flow(now_ms=local_midnight + day * 86_400_000 + 5 * 3_600_000)
    night = [m for m in messages if m["rule"] == "night_flow_rise"]
    assert [m["state"] for m in night] == ["active", "active"]  # opened on night 5, still so on night 6
    assert len({m["id"] for m in night}) == 1
    assert night[0]["explanation"].startswith("Minimum night flow 5.8 L/s against a usual 3.8 L/s")
    assert night[0]["started_ms"] == local_midnight + 4 * 86_400_000 + 4 * 3_600_000  # the 5th night's end
    assert engine.check_night_flow(now_ms=local_midnight + 5 * 86_400_000 + 9 * 3_600_000) == []  # once a night


def test_influxdb_down_still_publishes_alerts(registry):
    """Annotations are best effort: with InfluxDB unreachable the MQTT alerts still go out, without stalling."""
    registry.add(DeviceNew(id="pwr-0003", kind="power", district="bukit-bestari"))
    sent: list[tuple[str, bytes]] = []
    writer = V1Writer("http://127.0.0.1:9", "city", timeout_s=2)  # nothing listens on port 9
    engine = AnalyticsEngine(registry, writer, lambda topic, raw: sent.append((topic, raw)),
                             EngineParams(buffer_samples=64))
    started = time.monotonic()
    messages = feed(engine, "pwr-0003", voltage_batches(120, sag_at=range(80, 90)))
    writer.close()
    assert [m["state"] for m in messages][0] == "active" and messages[-1]["state"] == "cleared"
    assert len(sent) == len(messages)
    assert engine.counters["influx_errors"] == 1 and engine.counters["influx_skipped"] == len(messages) - 1
    assert time.monotonic() - started < 20
