"""The fleet runner with real parts: `python -m fleetsim` publishes to a real
Mosquitto, the ingest worker writes to a real influxd, and what arrives
matches the scenario and the labels file."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fleetsim
import pytest

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_shared import broker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.conftest import ROOT, make_settings
from tests.edge.mqtt_watch import Watcher

ENV = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'firmware-sim'}")


def make_fleet(tmp_path: Path, mosquitto, devices: int, seed: int = 3) -> tuple[Path, list[dict]]:
    specs = fleetsim.plan_fleet(fleetsim.load_scenario(), devices, seed)
    passwords = {s["id"]: broker.new_secret() for s in specs}
    for spec in specs:
        mosquitto.users[spec["id"]] = broker.hash_password(passwords[spec["id"]])
    mosquitto.write_credentials()
    mosquitto.restart()  # the broker reads its dynamic-security file at start
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"devices": [s | {"password": passwords[s["id"]]} for s in specs],
                                "broker": {"host": "127.0.0.1", "port": mosquitto.port}}))
    return path, specs


def run_fleetsim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetsim", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def read_labels(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def wait_for(predicate, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"condition not met within {timeout_s}s")


def test_fleet_history_and_live_reach_influxdb(make_mosquitto, influx_db, registry, tmp_path):
    mosquitto = make_mosquitto()
    fleet_file, specs = make_fleet(tmp_path, mosquitto, 40)
    for spec in specs:
        registry.add(DeviceNew(**spec))
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db)
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db), dead)
    worker.start()
    labels_file = tmp_path / "labels.csv"
    started_ms = int(time.time() * 1000)
    try:
        done = run_fleetsim("--fleet", str(fleet_file), "--seed", "3", "--duration", "8", "--hours", "3",
                            "--speed", "0", "--interval", "2", "--labels", str(labels_file))
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        expected = summary["readings"]
        counted = _settled_count(influx_db, expected)
    finally:
        worker.stop()
    # Every reading sent is stored once (a resent duplicate would overwrite itself).
    assert counted == expected, (counted, expected, dead.counts(), worker.counters)
    assert summary["history_readings"] >= 40 * 170  # 3 h at one a minute, less the silent spells
    per_kind = {kind: influx_db.rows(f'SELECT count(*) FROM "{kind}" GROUP BY "district"') for kind in contract.KINDS}
    assert all(per_kind.values()), per_kind
    old = influx_db.rows(f'SELECT count(seq) FROM "water" WHERE time < {(started_ms - 3_600_000) * 1_000_000}')
    assert old and old[0]["count"] > 0  # history kept its original timestamps
    labels = read_labels(labels_file)
    assert {row["fault"] for row in labels} == set(fleetsim.scenario.FAULT_NAMES)
    # The labels match what arrived: a silent device stored nothing inside its spell,
    # the broken device's payloads were dead-lettered.
    silent = next(row for row in labels if row["fault"] == "silent")
    inside = influx_db.rows(f"SELECT count(seq) FROM /.*/ WHERE device = '{silent['device']}' AND "
                            f"time >= {int(silent['start_ms']) * 1_000_000} AND "
                            f"time < {int(silent['end_ms']) * 1_000_000}")
    assert not inside or all(r["count"] == 0 for r in inside)
    if summary["malformed"]:
        assert dead.counts()
    stuck = next(row for row in labels if row["fault"] == "stuck")
    kind = next(s["kind"] for s in specs if s["id"] == stuck["device"])
    values = influx_db.rows(f'SELECT "{stuck["metric"]}" FROM "{kind}" WHERE device = \'{stuck["device"]}\' AND '
                            f"time >= {int(stuck['start_ms']) * 1_000_000} AND "
                            f"time < {int(stuck['end_ms']) * 1_000_000}")
    assert len({r[stuck["metric"]] for r in values}) == 1


def _settled_count(influx_db, expected: int, timeout_s: float = 30) -> int:
    """The stored point count once it reaches expected or stops moving for 3 s."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = _count_points(influx_db)
        if count >= expected:
            return count
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > 3:
            return count
        time.sleep(0.3)
    return last


def _count_points(influx_db) -> int:
    total = 0
    for kind in contract.KINDS:
        rows = influx_db.rows(f'SELECT count(seq) FROM "{kind}"')
        total += rows[0]["count"] if rows else 0
    return total


def test_sigterm_stops_cleanly_with_goodbyes_and_labels(make_mosquitto, tmp_path):
    mosquitto = make_mosquitto()
    fleet_file, specs = make_fleet(tmp_path, mosquitto, 12)
    watch = Watcher(mosquitto.port, [contract.STATUS_SUB]).start()
    labels_file = tmp_path / "labels.csv"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fleetsim", "--fleet", str(fleet_file), "--interval", "1",
                                 "--labels", str(labels_file)], env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: sum(1 for s in watch.status() if s["state"] == "online") >= 12, 20)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        watch.stop()
    assert proc.returncode == 0, err
    offline = [s for s in watch.status() if s["state"] == "offline"]
    assert len(offline) == 12  # each said goodbye itself
    births = [s for s in watch.status() if s["state"] == "online"]
    assert all(-150 <= s["rssi_dbm"] <= 0 and s["fw"] == "sim-0.1.0" for s in births)
    water = sum(1 for s in specs if s["kind"] == "water")
    assert sum(1 for s in births if 2.8 <= s.get("battery_v", 0) <= 3.7) == water  # battery meters say so
    assert "uptime_s" not in offline[0]
    with open(labels_file) as f:
        assert next(csv.reader(f)) == ["device", "metric", "fault", "start_ms", "end_ms"]
    # Stopped after seconds: faults planned later in the horizon never happened and are not labelled.
    now_ms = int(time.time() * 1000)
    assert all(int(r["start_ms"]) < int(r["end_ms"]) <= now_ms for r in read_labels(labels_file))


def test_fleet_rides_out_a_broker_restart(make_mosquitto, tmp_path):
    mosquitto = make_mosquitto(autosave_interval_s=1)
    fleet_file, specs = make_fleet(tmp_path, mosquitto, 8, seed=99)
    watch = Watcher(mosquitto.port, [contract.TELEMETRY_SUB]).start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fleetsim", "--fleet", str(fleet_file), "--interval", "1",
                                 "--duration", "11", "--scenario", str(_no_fault_scenario(tmp_path))], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the outage starts once every device is publishing (the fleet's start-up time varies with the load)
        wait_for(lambda: {a.topic.split("/")[3] for a in watch.telemetry()} >= {s["id"] for s in specs}, timeout_s=20)
        time.sleep(1)
        mosquitto.kill()
        time.sleep(2)
        mosquitto.start()
        out, err = proc.communicate(timeout=40)
        time.sleep(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        watch.stop()
    assert proc.returncode == 0, err
    by_device: dict[str, list[tuple[int, bool]]] = {}
    for arrival in watch.telemetry():
        device = arrival.topic.split("/")[3]
        for row in arrival.body["r"]:
            by_device.setdefault(device, []).append((row[0], arrival.body.get("hist", False)))
    assert set(by_device) == {s["id"] for s in specs}
    for device, rows in by_device.items():
        times = sorted({t for t, _ in rows})
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert max(gaps) < 2500, f"{device} lost readings: gap {max(gaps)} ms"
        assert any(hist for _, hist in rows), f"{device}: the outage should come back as history"


def _no_fault_scenario(tmp_path: Path) -> Path:
    scenario = fleetsim.load_scenario() | {"faults": {}}
    path = tmp_path / "calm.json"
    path.write_text(json.dumps(scenario))
    return path


@pytest.mark.parametrize("fleet, message", [
    ("{not json", "not valid JSON"),
    ("[]", "must be an object"),
    ('{"devices": [], "broker": {"port": 1883}}', "non-empty list"),
    ('{"devices": [{"id": "x"}], "broker": {"port": 1883}}', "not a valid device id"),
    ('{"devices": [{"id": "wtr-0001", "kind": "lava"}], "broker": {"port": 1883}}', "kind"),
    ('{"devices": [{"id": "wtr-0001", "kind": "water", "district": "a"}], "broker": {"port": 1883}}', "password"),
    ('{"devices": [{"id": "wtr-0001", "kind": "water", "district": "a", "password": "p"}], "broker": {"port": 0}}',
     "port"),
    ('{"devices": [{"id": "../../etc", "kind": "water"}], "broker": {"port": 1883}}', "not a valid device id"),
])
def test_bad_fleet_files_are_refused_clearly(tmp_path, fleet, message):
    path = tmp_path / "fleet.json"
    path.write_text(fleet)
    done = run_fleetsim("--fleet", str(path), "--duration", "1")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_endless_fleet_file_is_refused():
    done = run_fleetsim("--fleet", "/dev/zero")
    assert done.returncode == 2 and "more than" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--speed", "-1"], "--speed"),
    (["--duration", "0"], "--duration"),
    (["--hours", "100000"], "--hours"),
    (["--interval", "nan"], "--interval"),
    (["--scenario", "/nonexistent.json"], "cannot read scenario"),
    (["--scenario", "/dev/zero"], "more than"),
])
def test_bad_arguments_are_refused_clearly(tmp_path, args, message):
    path = tmp_path / "fleet.json"
    path.write_text('{"devices": [{"id": "wtr-0001", "kind": "water", "district": "a", "password": "p"}], '
                    '"broker": {"port": 1883}}')
    done = run_fleetsim("--fleet", str(path), *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_few_devices_run_as_real_micropython_processes(micropython_bin, make_mosquitto, tmp_path):
    mosquitto = make_mosquitto()
    fleet_file, specs = make_fleet(tmp_path, mosquitto, 10)
    watch = Watcher(mosquitto.port, [contract.TELEMETRY_SUB, contract.STATUS_SUB]).start()
    try:
        done = run_fleetsim("--fleet", str(fleet_file), "--duration", "6", "--interval", "1", "--micropython", "2")
        time.sleep(1.0)
    finally:
        watch.stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["devices"], summary["micropython"]) == (8, 2)
    firmware = {}
    for arrival in watch.telemetry():
        firmware.setdefault(arrival.body["fw"], set()).add(arrival.topic.split("/")[3])
    assert len(firmware["0.1.0"]) == 2  # the real firmware, as on a board
    assert len(firmware["sim-0.1.0"]) == 8
    mpy_kinds = {s["kind"] for s in specs if s["id"] in firmware["0.1.0"]}
    assert len(mpy_kinds) == 2  # one of each kind in turn
    offline = [s for s in watch.status() if s["state"] == "offline"]
    assert len(offline) == 10  # goodbyes from the simulated, last wills from the interrupted processes


def test_duty_cycled_devices_lose_nothing_and_keep_their_identity(make_mosquitto, tmp_path):
    """--duty-cycle: each device connects with its own login, publishes, disconnects, every interval;
    every reading arrives once, live, in sequence, under one boot id per device."""
    mosquitto = make_mosquitto()
    fleet_file, specs = make_fleet(tmp_path, mosquitto, 20, seed=5)
    watch = Watcher(mosquitto.port, [contract.TELEMETRY_SUB]).start()
    try:
        done = run_fleetsim("--fleet", str(fleet_file), "--interval", "1", "--duration", "7", "--duty-cycle",
                            "--scenario", str(_no_fault_scenario(tmp_path)))
        time.sleep(1)
    finally:
        watch.stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["connects"] >= 20 * 4, summary  # a connection per wake, not one for the run
    by_device: dict[str, list[dict]] = {}
    for arrival in watch.telemetry():
        by_device.setdefault(arrival.topic.split("/")[3], []).append(arrival.body)
    assert set(by_device) == {s["id"] for s in specs}
    readings = 0
    for device, bodies in by_device.items():
        seqs = [b["seq"] for b in bodies]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{device}: sequence {seqs}"
        assert len({b.get("boot") for b in bodies}) == 1 and bodies[0].get("boot") is not None, device
        assert not any(b.get("hist") for b in bodies), device  # taken while connected: live
        readings += sum(len(b["r"]) for b in bodies)
    assert readings == summary["readings"]
    assert summary["readings_sent"] == readings  # what the broker acknowledged, as the fleet counts it


def test_duty_cycled_fleet_loses_no_reading_through_ingest(make_mosquitto, influx_db, registry, tmp_path):
    """The scaled path end to end: 300 duty-cycled devices (a reading every 2 s, two a wake, one message)
    through the broker and a real ingest worker into influxd: every reading the fleet took is stored,
    those still asleep in a buffer at the stop included."""
    mosquitto = make_mosquitto()
    fleet_file, specs = make_fleet(tmp_path, mosquitto, 300, seed=8)
    for spec in specs:
        registry.add(DeviceNew(**spec))
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db)
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db), dead)
    worker.start()
    try:
        done = run_fleetsim("--fleet", str(fleet_file), "--interval", "2", "--duration", "12", "--duty-cycle",
                            "--readings-per-wake", "2", "--scenario", str(_no_fault_scenario(tmp_path)), timeout=90)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        counted = _settled_count(influx_db, summary["readings"])
    finally:
        worker.stop()
    assert summary["readings"] >= 300 * 3, summary  # every device woke several times
    assert summary["messages"] < summary["readings"] * 0.75, summary  # readings went two a message
    assert summary["connect_failures"] == 0, summary
    assert counted == summary["readings"], (counted, summary, dead.counts(), worker.counters)
    assert summary["readings_sent"] == summary["readings"], summary
