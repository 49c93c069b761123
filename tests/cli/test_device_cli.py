"""`city device ...` end to end: CLI -> API (uvicorn) -> provisioning -> real Mosquitto."""

import json
import threading
import time

from edge import contract
from tests.security.support import connect, wait_for


def add(city, device_id: str, kind: str = "water", *extra: str) -> dict:
    result = city.run("add", "--kind", kind, "--district", "bukit-bestari", "--id", device_id, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_shows_the_password_once_and_the_device_can_connect(city):
    result = city.run("add", "--kind", "water", "--district", "tanjungpinang-kota", "--lat", "0.92", "--lon",
                      "104.45", "--note", "pump station 3")
    assert result.exit_code == 0, result.output
    assert "shown only this once" in result.stdout
    [device] = city.registry.list()[0]
    assert device.id.startswith("wtr-") and device.kind == "water" and device.lat == 0.92
    password = result.stdout.split("MQTT password")[1].split()[1].strip("│ ")
    client = connect(city.mosquitto.port, device.id, password)
    assert client.accepted
    client.stop()
    shown = city.run("show", device.id, "--json")
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert "password" not in detail and "credential_hash" not in detail
    assert detail["config"]["interval_ms"] == 10000


def test_list_and_show_as_tables_and_json(city):
    add(city, "wtr-0001")
    add(city, "pwr-0001", "power")
    table = city.run("list")
    assert table.exit_code == 0 and "wtr-0001" in table.stdout and "pwr-0001" in table.stdout
    page = json.loads(city.run("list", "--kind", "power", "--json").stdout)
    assert page["count"] == 1 and [d["id"] for d in page["data"]] == ["pwr-0001"]
    shown = city.run("show", "pwr-0001")
    assert shown.exit_code == 0 and "power" in shown.stdout and "no status yet" in shown.stdout


def test_rotate_asks_first_then_refuses_the_old_password_and_cuts_its_session(city):
    old = add(city, "pwr-0001", "power")["password"]
    device = connect(city.mosquitto.port, "pwr-0001", old)
    refused = city.run("rotate", "pwr-0001", input="n\n")
    assert refused.exit_code == 1 and "nothing changed" in refused.output
    assert device.disconnected_at is None and connect(city.mosquitto.port, "pwr-0001", old).accepted
    started = time.monotonic()
    result = city.run("rotate", "pwr-0001", "--yes", "--json")
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)["password"]
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert device.disconnected_at - started < 5
    assert not connect(city.mosquitto.port, "pwr-0001", old).accepted
    fresh = connect(city.mosquitto.port, "pwr-0001", new)
    assert fresh.accepted
    fresh.stop()


def test_retire_cuts_the_session_and_the_broker_refuses_the_device(city):
    password = add(city, "trf-0001", "traffic")["password"]
    device = connect(city.mosquitto.port, "trf-0001", password)
    started = time.monotonic()
    result = city.run("retire", "trf-0001", input="y\n")
    assert result.exit_code == 0, result.output
    assert "retired" in result.stdout
    wait_for(lambda: device.disconnected_at, timeout_s=5)
    assert device.disconnected_at - started < 5
    assert not connect(city.mosquitto.port, "trf-0001", password).accepted
    assert city.registry.get("trf-0001").state == "retired"
    again = city.run("retire", "trf-0001", "--yes")
    assert again.exit_code == 4 and "retired" in again.output
    assert city.run("rotate", "trf-0001", "--yes").exit_code == 4
    listed = json.loads(city.run("list", "--state", "retired", "--json").stdout)
    assert [d["id"] for d in listed["data"]] == ["trf-0001"]


def test_config_set_is_retained_and_validated_against_the_kind(city):
    password = add(city, "wtr-0001")["password"]
    result = city.run("config", "set", "wtr-0001", "--interval-ms", "2000", "--batch-size", "4",
                      "--threshold", "pressure_bar=1.5:6", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"v": 1, "interval_ms": 2000, "batch_size": 4,
                                         "thresholds": {"pressure_bar": [1.5, 6.0]}}
    device = connect(city.mosquitto.port, "wtr-0001", password)
    device.subscribe(contract.config_topic("wtr-0001"))
    retained = wait_for(lambda: device.payloads(contract.config_topic("wtr-0001")))
    assert contract.decode_config(retained[-1])["batch_size"] == 4
    device.stop()
    wrong_kind = city.run("config", "set", "wtr-0001", "--interval-ms", "2000", "--threshold", "voltage_v=200:250")
    # valid metric, wrong kind: the device's kind decides, so a conflict (409) rather than bad input
    assert wrong_kind.exit_code == 4 and "not a water metric" in wrong_kind.output
    assert json.loads(city.run("show", "wtr-0001", "--json").stdout)["config"]["batch_size"] == 4


def test_watch_streams_one_devices_readings(city):
    password = add(city, "bld-0001", "building")["password"]
    other = add(city, "bld-0002", "building")["password"]
    now = int(time.time() * 1000)

    def publish() -> None:
        control = city.api.app.state.services.devices  # publish once the watch is subscribed, not at a guessed time
        wait_for(lambda: control.link is not None and "bld-0001" in control.link.watches, timeout_s=20)
        time.sleep(0.3)
        for device_id, secret, co2 in (("bld-0002", other, 999.0), ("bld-0001", password, 612.0)):
            device = connect(city.mosquitto.port, device_id, secret)
            device.publish(contract.status_topic(device_id), contract.encode_status("online", "0.1.0", rssi_dbm=-67),
                           retain=True)
            device.publish(contract.telemetry_topic(device_id),
                           contract.encode_telemetry(7, [(now, {"co2_ppm": co2, "beds_free": 4.0})], "0.1.0"))
            device.stop()

    threading.Thread(target=publish, daemon=True).start()
    result = city.run("watch", "bld-0001", "--count", "2", "--timeout", "20", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["status", "telemetry"]
    assert events[0]["rssi_dbm"] == -67
    assert events[1]["seq"] == 7 and events[1]["samples"] == [[now, {"beds_free": 4.0, "co2_ppm": 612.0}, 0]]
    quiet = city.run("watch", "bld-0001", "--timeout", "1")  # the retained birth only
    assert quiet.exit_code == 0 and "status online (retained)" in quiet.stdout


def test_watch_of_a_silent_device_says_so(city):
    add(city, "trf-0009", "traffic")
    result = city.run("watch", "trf-0009", "--timeout", "1")
    assert result.exit_code == 1 and "nothing from trf-0009" in result.output


def test_a_district_the_city_profile_lacks_is_refused_naming_the_allowed_ones(city):
    result = city.run("add", "--kind", "water", "--district", "atlantis", "--id", "wtr-0001")
    assert result.exit_code == 2, result.output
    assert "atlantis" in result.output and "bukit-bestari, tanjungpinang-kota" in result.output
    assert city.registry.list()[0] == []
    import httpx

    response = httpx.post(f"{city.api.url}/devices", headers={"Authorization": f"Bearer {city.token}"},
                          json={"kind": "water", "district": "atlantis"})
    assert response.status_code == 422 and "tanjungpinang-timur" in response.text


def test_the_cli_speaks_indonesian_when_the_user_does(city, monkeypatch):
    add(city, "wtr-0001")
    monkeypatch.setenv("CITY_LANGUAGE", "id")
    table = city.run("list")
    assert table.exit_code == 0 and "1 dari 1 perangkat" in table.stdout
    refused = city.run("retire", "wtr-0001", input="n\n")
    assert refused.exit_code == 1 and "tidak ada yang berubah" in refused.output
    assert "Pensiunkan wtr-0001?" in refused.output
    monkeypatch.setenv("CITY_LANGUAGE", "en")
    assert "1 of 1 devices" in city.run("list").stdout


def test_indonesian_tables_dates_and_errors_and_json_that_stays_neutral(city, monkeypatch):
    add(city, "wtr-0002")
    city.registry.seen("wtr-0002", 1_773_979_200_000, "1.2.3")  # 2026-03-20 04:00 UTC: 11.00 WIB
    monkeypatch.setenv("CITY_LANGUAGE", "en")
    as_json_en = city.run("show", "wtr-0002", "--json").stdout
    english = city.run("show", "wtr-0002").stdout
    assert "last seen" in english and "2026-03-20 11:00 WIB" in english
    monkeypatch.setenv("CITY_LANGUAGE", "id")
    shown = city.run("show", "wtr-0002")
    assert shown.exit_code == 0, shown.output
    assert "terakhir terlihat" in shown.stdout and "20-03-2026 11.00 WIB" in shown.stdout
    assert "Perangkat wtr-0002" in shown.stdout and "last seen" not in shown.stdout
    # a refusal in Indonesian, naming what was wrong
    bad = city.run("config", "set", "wtr-0002", "--interval-ms", "10000", "--threshold", "pressure_bar=6:1.5")
    assert bad.exit_code == 2 and "ambang 'pressure_bar=6:1.5' salah: bawah harus <= atas" in bad.output
    # --json is for scripts: the same bytes in either language
    assert city.run("show", "wtr-0002", "--json").stdout == as_json_en
    assert json.loads(as_json_en)["last_seen_ms"] == 1_773_979_200_000
