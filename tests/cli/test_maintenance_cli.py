"""`city device maintenance start|stop|list` end to end: CLI -> API (uvicorn, technician key) ->
the alarm store; a device's alarms are suppressed while it is worked on."""

import datetime as dt
import json
import time

import pytest

from telemetry_cli.maintenance import parse_until
from tests.api.harness import alert
from tests.cli.test_device_cli import add

WIB = dt.timezone(dt.timedelta(hours=7))


def test_start_list_stop_as_tables_and_json(city):
    add(city, "wtr-0001")
    alarms = city.api.app.state.services.alerts
    alarms.apply(alert("inc-cli", device="wtr-0001"))
    started = city.run("maintenance", "start", "wtr-0001", "--until", "2h", "--note", "replacing the sensor",
                       "--json")
    assert started.exit_code == 0, started.output
    answer = json.loads(started.stdout)
    assert answer["alerts"] == ["inc-cli"] and answer["maintenance"]["started_by"] == "tech"
    assert abs(answer["maintenance"]["until_ms"] - (time.time() + 7200) * 1000) < 60_000
    assert alarms.store.get("inc-cli").suppressed
    listed = city.run("maintenance", "list")
    assert listed.exit_code == 0 and "wtr-0001" in listed.stdout and "in force" in listed.stdout
    assert "replacing" in listed.stdout  # (a narrow terminal wraps the note)
    stopped = city.run("maintenance", "stop", "wtr-0001")
    assert stopped.exit_code == 0, stopped.output
    assert "maintenance of wtr-0001 ended" in stopped.stdout and "inc-cli" in stopped.stdout
    assert not alarms.store.get("inc-cli").suppressed
    assert json.loads(city.run("maintenance", "list", "--json").stdout)["data"][0]["end_reason"] == "stopped"


@pytest.mark.parametrize("args, code, says", [
    (["start", "wtr-9999", "--until", "1h", "--note", "x"], 3, "no device wtr-9999"),
    (["start", "wtr-0002", "--until", "1h", "--note", "x"], 4, "retired"),
    (["start", "wtr-0001", "--until", "tomorrow", "--note", "x"], 2, "a duration"),
    (["start", "wtr-0001", "--until", "2020-01-01T00:00", "--note", "x"], 2, "in the past"),
    (["start", "wtr-0001", "--until", "999d", "--note", "x"], 2, "at most 336 h"),
    (["start", "wtr-0001", "--until", "2020-01-01T00:00+07:00", "--note", "x"], 2, "in the past"),
    (["start", "wtr-0001", "--until", "1h", "--note", " "], 2, "--note"),
    (["start", "BAD id", "--until", "1h", "--note", "x"], 2, "bad device id"),
    (["stop", "wtr-0001"], 4, "not under maintenance"),
])
def test_bad_input_is_refused_with_a_clear_message_and_nothing_recorded(city, args, code, says):
    add(city, "wtr-0001")
    add(city, "wtr-0002")
    assert city.run("retire", "wtr-0002", "--yes").exit_code == 0
    result = city.run("maintenance", *args)
    assert result.exit_code == code, result.output
    assert says in result.output.replace("\n", " ")
    assert city.api.app.state.services.alerts.alarms.maintenance.history()[1] == 0


def test_an_operator_key_may_not_set_maintenance(city):
    add(city, "wtr-0001")
    result = city.run("maintenance", "start", "wtr-0001", "--until", "1h", "--note", "x", token=city.key("operator"))
    assert result.exit_code == 5 and "technician" in result.output


def test_until_reads_durations_and_city_times():
    now = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.UTC)
    ms = int(now.timestamp() * 1000)
    assert parse_until("90m", now, WIB) == ms + 90 * 60_000
    assert parse_until("2d", now, WIB) == ms + 2 * 86_400_000
    assert parse_until("2026-12-05T17:00", now, WIB) == ms + 2 * 3_600_000  # 17:00 WIB is 10:00 UTC
    assert parse_until("2026-12-05T17:00+00:00", now, WIB) == ms + 9 * 3_600_000
    for bad in ("", "5 weeks", "-1h", "99999h", "17:00 tomorrow"):
        with pytest.raises(ValueError, match="a duration"):
            parse_until(bad, now, WIB)
