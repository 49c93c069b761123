"""The README's first command: `city up` brings the whole city up on this
machine, readings of all four kinds reach InfluxDB within a minute, and
Ctrl-C stops every process it started. Run for each shipped city profile:
the second (a 120 V / 60 Hz city) proves nothing of the first hides in code."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge import contract
from telemetry_shared.city import load_profile
from telemetry_shared.influx import InfluxError, InfluxQL
from telemetry_shared.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("profile", ["tanjungpinang", "honolulu"])
def test_city_up_brings_readings_of_every_kind_and_stops_cleanly(tmp_path, profile):
    data_dir = tmp_path / "var"
    city_profile = load_profile(ROOT / "cities" / f"{profile}.yaml")
    env = os.environ | {"CITY_DATA_DIR": str(data_dir), "CITY_MQTT_PORT": str(free_port()),
                        "CITY_INFLUX_URL": f"http://127.0.0.1:{free_port()}", "CITY_API_PORT": str(free_port()),
                        "CITY_PROFILE": str(city_profile.path)}
    city = subprocess.Popen([sys.executable, "-m", "telemetry_cli.main", "up", "--devices", "8", "--duration", "120"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "city.json").exists():
            assert city.poll() is None, city.stdout.read()
            assert time.monotonic() < deadline, "city.json never appeared"
            time.sleep(0.2)
        state = json.loads((data_dir / "city.json").read_text())
        influx = InfluxQL(f"http://127.0.0.1:{state['influx_port']}", "city")
        seen: set[str] = set()
        while seen != set(contract.KINDS) and time.monotonic() < deadline:
            for kind in contract.KINDS:
                try:
                    if influx.rows(f'SELECT count("seq") FROM "{kind}"'):
                        seen.add(kind)
                except InfluxError:
                    pass
            time.sleep(1)
        assert seen == set(contract.KINDS), f"only {seen} within a minute"
        districts = {row["value"] for row in influx.rows('SHOW TAG VALUES FROM "power" WITH KEY = "district"')}
        assert districts and districts <= set(city_profile.slugs)
        [grid] = influx.rows('SELECT median("voltage_v") AS v, median("frequency_hz") AS hz FROM "power"')
        assert abs(grid["v"] / city_profile.grid.nominal_voltage_v - 1) < 0.06, grid
        assert abs(grid["hz"] - city_profile.grid.nominal_frequency_hz) < 0.2, grid
        time.sleep(5)  # the engine has scored the first batches: the profile's limits, so no frequency alarm
        alarms = influx.rows('SELECT count("score") FROM "alerts" WHERE "rule" = \'frequency_out_of_range\'')
        assert not alarms or alarms[0]["count"] == 0, alarms
        children = _child_pids(city.pid)
        assert len(children) >= 4
    finally:
        city.send_signal(signal.SIGINT)
        output, _ = city.communicate(timeout=60)
    assert city.returncode == 0, output
    assert "stopped cleanly" in output
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []
    assert not (data_dir / "city.json").exists()


def _child_pids(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def test_city_up_restarts_a_crashed_service_and_says_so(tmp_path):
    data_dir = tmp_path / "var"
    env = os.environ | {"CITY_DATA_DIR": str(data_dir), "CITY_MQTT_PORT": str(free_port()),
                        "CITY_INFLUX_URL": f"http://127.0.0.1:{free_port()}", "CITY_API_PORT": str(free_port())}
    city = subprocess.Popen([sys.executable, "-m", "telemetry_cli.main", "up", "--devices", "4", "--duration", "150",
                             "--no-micropython"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pids_file = data_dir / "processes.json"
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "city.json").exists() or not pids_file.exists():
            assert city.poll() is None, city.stdout.read()
            assert time.monotonic() < deadline, "city.json never appeared"
            time.sleep(0.2)
        state = json.loads((data_dir / "city.json").read_text())
        influx = InfluxQL(f"http://127.0.0.1:{state['influx_port']}", "city")

        def stored() -> int:
            try:
                return sum(r["count"] for kind in contract.KINDS
                           for r in influx.rows(f'SELECT count("seq") FROM "{kind}"'))
            except InfluxError:
                return 0

        while stored() == 0:
            assert time.monotonic() < deadline, "no readings within a minute"
            time.sleep(0.5)
        killed = {}
        for name in ("ingest-0", "api"):  # a crash: no chance to clean up
            killed[name] = json.loads(pids_file.read_text())[name]
            os.kill(killed[name], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            pids = json.loads(pids_file.read_text())
            if all(pids[name] != pid and _alive(pids[name]) for name, pid in killed.items()):
                break
            assert time.monotonic() < deadline, f"not restarted within 20 s: {pids} (killed {killed})"
            time.sleep(0.2)
        before = stored()
        deadline = time.monotonic() + 30
        while stored() <= before:  # the new ingest worker stores readings again
            assert time.monotonic() < deadline, "no readings stored after the restart"
            time.sleep(0.5)
    finally:
        city.send_signal(signal.SIGINT)
        output, _ = city.communicate(timeout=60)
    assert city.returncode == 0, output
    for name in ("ingest-0", "api"):
        assert f"{name} exited (-9)" in output and f"{name} restarted (#1)" in output, output
    assert "stopped cleanly" in output
    assert not pids_file.exists()
