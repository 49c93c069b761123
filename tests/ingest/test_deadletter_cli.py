"""`city deadletter list|counts|replay` on a real dead-letter file, registry
and influxd: an unknown device's message is replayed once the device is
registered; what is still wrong stays; bad input and a missing InfluxDB get
clear errors and change nothing."""

import json
import time

import pytest
from typer.testing import CliRunner

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.decode import Decoded, Decoder
from ingest.metrics import Metrics
from ingest.sink import Sink
from ingest.spool import Spool
from telemetry_cli.main import app
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from telemetry_shared.servers import free_port

runner = CliRunner()


@pytest.fixture
def rejected(tmp_path, registry, influx_db):
    """A dead-letter file with one entry of each kind, made the way the worker makes them."""
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    dead = DeadLetters(tmp_path / "var" / "deadletter.sqlite3")
    now = int(time.time() * 1000)
    decoder, out = Decoder(registry, Metrics("t")), Decoded()
    topic = contract.telemetry_topic
    decoder.decode(topic("ghost-01"), contract.encode_telemetry(0, [(now, {"flow_lps": 7.0})], "1"), now, out)
    decoder.decode(topic("wtr-0001"), contract.encode_telemetry(
        0, [(now, {"flow_lps": 1.0, "pressure_bar": 99.0})], "1"), now, out)
    decoder.decode(topic("wtr-0001"), b'{"v":1,"seq":', now, out)
    dead.add_many(out.rejects)
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write(out.lines)
    # InfluxDB refuses a line whose field changes type: a partial write, dead-lettered alone.
    sink = Sink(writer, Spool(tmp_path / "spool", 10**6), dead, Metrics("t"))
    sink.store([f"water,device=wtr-0001,district=bukit-bestari flow_lps=\"high\" {now + 5}",
                f"water,device=wtr-0001,district=bukit-bestari flow_lps=2.0 {now + 6}"])
    env = {"CITY_ENVIRONMENT": "test", "CITY_DATA_DIR": str(tmp_path / "var"), "CITY_REGISTRY_PATH": str(registry.path),
           "CITY_INFLUX_URL": str(influx_db.http.base_url), "CITY_INFLUX_DB": influx_db.db, "COLUMNS": "200"}
    return env, dead


def city(env: dict, *args: str):
    return runner.invoke(app, ["deadletter", *args], env=env)


def test_counts_and_list(rejected):
    env, _ = rejected
    result = city(env, "counts", "--json")
    assert result.exit_code == 0, result.output
    counts = {row["reason"]: (row["total"], row["pending"]) for row in json.loads(result.stdout)["data"]}
    assert counts == {"unknown_device": (1, 1), "out_of_bounds": (1, 1), "malformed_json": (1, 1),
                      "influx_rejected": (1, 1)}
    listed = json.loads(city(env, "list", "--reason", "unknown_device", "--json").stdout)
    assert listed["count"] == 1 and listed["data"][0]["device"] == "ghost-01"
    assert json.loads(listed["data"][0]["payload_text"])["r"][0][1] == {"flow_lps": 7.0}
    table = city(env, "list")
    assert table.exit_code == 0 and "ghost-01" in table.stdout and "influx_rejected" in table.stdout


def test_replay_writes_what_is_now_accepted_and_keeps_the_rest(rejected, registry, influx_db):
    env, dead = rejected
    registry.add(DeviceNew(id="ghost-01", kind="water", district="tanjungpinang-kota"))
    result = city(env, "replay", "--reason", "unknown_device", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["replayed"]) == 1 and summary["points_written"] == 1
    rows = influx_db.rows("SELECT \"flow_lps\", \"district\" FROM \"water\" WHERE \"device\" = 'ghost-01'")
    assert [(r["flow_lps"], r["district"]) for r in rows] == [(7.0, "tanjungpinang-kota")]

    everything = city(env, "replay", "--json")  # the rest still breaks the contract, or InfluxDB's schema
    assert everything.exit_code == 1
    summary = json.loads(everything.stdout)
    assert summary["replayed"] == [] and len(summary["still_rejected"]) == 3
    assert any("out_of_bounds" in why for why in summary["still_rejected"].values())
    assert dead.counts(pending_only=True) == {"out_of_bounds": 1, "malformed_json": 1, "influx_rejected": 1}
    again = json.loads(city(env, "replay", "--reason", "unknown_device", "--json").stdout)
    assert again["replayed"] == []  # replayed entries are not replayed twice


@pytest.mark.parametrize("args", [
    ["list", "--limit", "0"], ["list", "--limit", "1000000000"], ["list", "--offset", "-1"],
    ["list", "--reason", "a\x00b"], ["list", "--device", "x" * 500], ["replay", "0"], ["replay", "abc"],
    ["replay", "--limit", "-5"], ["counts", "--bogus"], ["nonsense"],
])
def test_bad_input_is_refused_clearly(rejected, args):
    env, dead = rejected
    before = dead.counts(pending_only=True)
    result = city(env, *args)
    assert result.exit_code == 2, result.output
    assert dead.counts(pending_only=True) == before


def test_unknown_ids_are_reported_not_invented(rejected):
    env, _ = rejected
    summary = json.loads(city(env, "replay", "999999", "--json").stdout)
    assert summary["not_found_or_done"] == [999999] and summary["replayed"] == []


def test_influxdb_away_marks_nothing_replayed(rejected, registry):
    env, dead = rejected
    registry.add(DeviceNew(id="ghost-01", kind="water", district="tanjungpinang-kota"))
    env = env | {"CITY_INFLUX_URL": f"http://127.0.0.1:{free_port()}", "CITY_INFLUX_TIMEOUT_S": "1"}
    result = city(env, "replay", "--reason", "unknown_device")
    assert result.exit_code == 6 and "InfluxDB unavailable" in result.output
    assert dead.counts(pending_only=True)["unknown_device"] == 1
