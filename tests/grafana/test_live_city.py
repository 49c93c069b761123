"""Every dashboard panel against a LIVE simulated city, not hand-made data:
`city up` (Mosquitto, influxd, ingest, analytics, the API, a small fleet) and
`city simulate --hours 26` replaying a day of history through MQTT and ingest,
then the real rollup job (in the city profile's time zone). Each panel's
queries are filled with ONLY its own board's variables (All) and over the
panel's own range (a 90-day panel is asked for 90 days) as Grafana does, and
run against the city's influxd:
every panel returns data, or an explicit 0, or is a panel empty on a healthy
city by design (no alert raised yet) that says so with its `noValue`.

The water and power-quality boards are held to more: `city up` sets the scenario's DMAs and feeders
(fleetsim/networks.py) whose meters upload four weeks of history through the agent path, and the analytics
service writes the water balance and power-quality report on its schedule (CITY_ANALYTICS_NETWORK_REPORT_S,
15 s here): every query of those two boards must return values, with no `noValue` excuse."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import fleetsim
import pytest
from fleetsim.networks import plan_networks

from edge import contract
from grafana.boards import all_dashboards
from grafana.queries import fill_variables, panel_span_ms
from ingest.rollup import ROLLUP_RP, ensure_retention, run_rollup
from telemetry_shared.influx import InfluxError, InfluxQL, V1Writer
from telemetry_shared.servers import free_port
from telemetry_shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
BOARDS = {board.uid: board.to_json() for board in all_dashboards()}
HOURS = 26
NETWORK_METERS = {d["id"] for d in plan_networks(fleetsim.load_scenario(fleetsim.DEFAULT_SCENARIO)).devices}
ENGINEERS_BOARDS = ("city-water", "city-power-quality")
UTC_OFFSET_H = get_settings().utc_offset_hours  # the city profile's (CITY_PROFILE), as `city up` runs it
CITY_DIR: list[Path] = []  # the live city's data directory, for its logs in a failure's message


def _city(*args: str, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "telemetry_cli.main", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except InfluxError:
            pass
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def live_city(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("live-city") / "var"
    env = os.environ | {"CITY_DATA_DIR": str(data_dir), "CITY_MQTT_PORT": str(free_port()),
                        "CITY_INFLUX_URL": f"http://127.0.0.1:{free_port()}", "CITY_API_PORT": str(free_port()),
                        "CITY_INGEST_STATS_INTERVAL_S": "2", "CITY_ANALYTICS_NETWORK_REPORT_S": "15"}
    # --duration bounds the city if the test run is killed; the fixture's teardown stops it before that
    city = _city("up", "--devices", "8", "--no-micropython", "--duration", "1500", env=env)
    CITY_DIR[:] = [data_dir]
    try:
        _wait(lambda: (data_dir / "city.json").exists(), 90, "city.json")
        state = json.loads((data_dir / "city.json").read_text())
        influx = InfluxQL(f"http://127.0.0.1:{state['influx_port']}", "city")
        # enough devices (a fixed seed) that the city has reservoirs and hospital wards; --duration bounds the
        # whole run, replay included, so a replay cut short (a loaded machine) fails here, not as an empty panel
        simulate = _city("simulate", "--devices", "80", "--hours", str(HOURS), "--speed", "0", "--duration", "60",
                         "--json", env=env | {"CITY_INFLUX_URL": influx.http.base_url.__str__().rstrip("/")})
        output, _ = simulate.communicate(timeout=300)
        assert simulate.returncode == 0, output[-3000:]
        summary = json.loads(output.strip().splitlines()[-1])
        assert summary["history_done"] == summary["devices"], f"history replay cut short: {summary}"
        _wait(lambda: all(influx.rows(f'SELECT count("seq") FROM "{k}" WHERE time > now() - 30m')
                          for k in contract.KINDS), 90, "live readings of every kind")
        _wait(lambda: influx.rows('SELECT count("received") FROM "ingest_stats"'), 60, "ingest_stats")
        ensure_retention(influx, "90d")
        rollups = V1Writer(str(influx.http.base_url).rstrip("/"), "city", rp=ROLLUP_RP)
        now = int(time.time() * 1000)
        for period in ("1h", "1d"):
            run_rollup(influx, rollups, period, now - (HOURS + 24) * 3_600_000, now, UTC_OFFSET_H,
                       get_settings().local_zone)
        rollups.close()
        assert influx.rows(f'SELECT count("voltage_v_max") FROM "{ROLLUP_RP}"."power_1d"'), "no daily rollups"
        yield influx
    finally:
        city.send_signal(signal.SIGINT)
        try:
            city.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            city.kill()


# The ranges an engineer picks: the replayed day at Grafana's 10-minute buckets, and the last 15 minutes at
# its 1-minute floor (the city is minutes old: a rate of its counters needs two buckets of them).
RANGES = ((HOURS + 1) * 3_600_000, "10m"), (15 * 60_000, "1m")


def _values(uid: str, panel: dict, span_ms: int, interval: str) -> dict[str, str]:
    now = int(time.time() * 1000)
    span_ms = panel_span_ms(panel, span_ms)
    own = {v["name"]: ".*" for v in BOARDS[uid]["templating"]["list"]}  # only this board's variables, at All
    return {"timeFilter": f"time >= {now - span_ms}ms and time <= {now}ms", "__interval": interval} | own


def _answers(series: list[dict]) -> bool:
    """Data, or an explicit 0: some value that is not missing."""
    return any(v is not None for s in series for row in s.get("values", []) for v in row[1:])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_panel_returns_data_or_an_explicit_0_on_a_live_city(live_city: InfluxQL) -> None:
    silent = []
    for uid, board in BOARDS.items():
        for panel in board["panels"]:
            answered = any(_answers(live_city.series(fill_variables(t["query"], _values(uid, panel, *r))))
                           for t in panel["targets"] for r in RANGES)
            if not answered and panel["fieldConfig"]["defaults"].get("noValue") is None:
                silent.append(f"{uid} / {panel['title']}")
    assert silent == [], f"panels with no data and no explicit 0 on a live city: {silent}"


@pytest.mark.slow
def test_daily_rollups_start_at_the_city_profiles_local_midnight(live_city: InfluxQL) -> None:
    # The daily panels read these: a day cut at another offset mixes two local days.
    rows = live_city.rows(f'SELECT "voltage_v_max" FROM "{ROLLUP_RP}"."power_1d"')
    assert rows
    zone = get_settings().city.zone
    starts = [datetime.fromtimestamp(row["time"] / 1000, zone) for row in rows]
    assert all((t.hour, t.minute) == (0, 0) for t in starts), starts


@pytest.mark.slow
def test_the_replayed_history_shows_as_backfill_and_the_live_fleet_does_not(live_city: InfluxQL) -> None:
    # `city simulate --hours 26` sent its day as history (hist=true, devices tagged -s); `city up`'s own fleet
    # only ever sent live readings. Every board's backfill panel must see the first and none of the second.
    for uid, board in BOARDS.items():
        panel = next(p for p in board["panels"] if p["title"] == "Backfilled readings")
        series = live_city.series(fill_variables(panel["targets"][0]["query"], _values(uid, panel, *RANGES[0])))
        counted = {s["tags"].get("device", s["tags"].get("district")): sum(row[1] or 0 for row in s["values"])
                   for s in series}
        assert sum(counted.values()) > 0, f"{uid}: no backfilled readings from a 26-hour replay"
        if "device" in series[0]["tags"]:
            # the DMAs' and feeders' meters upload their data loggers' history when they connect: backfill too
            live = [d for d in counted if not re.search(r"-s[0-9]+$", d) and d not in NETWORK_METERS]
            assert live == [], f"{uid}: live devices counted as backfill: {live}"


def _has_values(series: list[dict]) -> bool:
    """Some value that is neither missing nor zero: a count panel of zeros shows the engineer nothing."""
    return any(v not in (None, 0) for s in series for row in s.get("values", []) for v in row[1:])


def _city_logs() -> str:
    """What the analytics service said of its network reports, and the fleet's last progress line."""
    lines = []
    for name, wanted in (("analytics.log", "network reports"), ("fleet.log", "fleet:")):
        path = CITY_DIR[0] / name if CITY_DIR else None
        text = path.read_text(errors="replace") if path and path.exists() else ""
        lines += [line[:300] for line in text.splitlines() if wanted in line or "Error" in line][-6:]
    return "\n".join(lines)


def _silent_queries(influx: InfluxQL) -> list[str]:
    silent = []
    for uid in ENGINEERS_BOARDS:
        for panel in BOARDS[uid]["panels"]:
            for target in panel["targets"]:
                if not any(_has_values(influx.series(fill_variables(target["query"], _values(uid, panel, *r))))
                           for r in RANGES):
                    silent.append(f"{uid} / {panel['title']}: {target['query'][:80]}")
    return silent


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_query_of_the_water_and_power_quality_boards_returns_values_on_a_live_city(
        live_city: InfluxQL) -> None:
    # The meters' four weeks arrive within a minute or two of the start and the analytics service writes the
    # reports every 15 s here: wait (bounded) for a report written after the history was in.
    deadline = time.monotonic() + 420
    silent = _silent_queries(live_city)
    while silent and time.monotonic() < deadline:
        time.sleep(5)
        silent = _silent_queries(live_city)
    assert silent == [], f"queries with no values on a live city: {silent}\nthe city's logs:\n{_city_logs()}"
    # the figures come from the planted networks: every DMA balanced, every feeder's losses, suspects found
    dmas = {r["value"] for r in live_city.rows('SHOW TAG VALUES FROM "water_balance" WITH KEY = "dma"')}
    feeders = {r["value"] for r in live_city.rows('SHOW TAG VALUES FROM "feeder_losses" WITH KEY = "feeder"')}
    plan = plan_networks(fleetsim.load_scenario(fleetsim.DEFAULT_SCENARIO))
    assert dmas == {n["id"] for n in plan.networks if n["utility"] == "water"}
    assert feeders == {n["id"] for n in plan.networks if n["utility"] == "power"}
