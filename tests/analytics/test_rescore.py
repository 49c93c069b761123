"""`city rescore`: the detectors over history in a real influxd, and the
alerts they would have raised, with parameters tried from the command line."""

import json
import random
import time

import pytest
from typer.testing import CliRunner

from analytics.config import DEFAULT_PARAMS
from analytics.rescore import RescoreError, parse_overrides, rescore
from telemetry_cli.main import app
from telemetry_shared.influx import InfluxQL, V1Writer

STEP = 60_000


def write_meters(db: InfluxQL, seed: int, sagging: set[str], backfilled: range | None = None) -> InfluxQL:
    """Three hours of two power meters, one reading a minute; the `sagging` ones at 195 V for 10 minutes, an
    hour ago. With `backfilled`, every point carries `hist` as ingest writes it, true for pwr-0001's readings at
    those steps (it was offline and sent them late); without, no point has it (stored before ingest wrote it)."""
    now = int(time.time() * 1000) // STEP * STEP
    rng = random.Random(seed)
    lines = []
    for i in range(180):
        t = now - (180 - i) * STEP
        for device, district in (("pwr-0001", "bukit-bestari"), ("pwr-0002", "tanjungpinang-kota")):
            volts = 195.0 if device in sagging and 120 <= i < 130 else 229 + rng.gauss(0, 0.7)
            hist = "" if backfilled is None else f",hist={str(device == 'pwr-0001' and i in backfilled).lower()}"
            lines.append(f"power,device={device},district={district} voltage_v={volts:.2f},"
                         f"frequency_hz={50 + rng.gauss(0, 0.01):.3f},seq={i}i{hist} {t}")
    writer = V1Writer(str(db.http.base_url), db.db)
    writer.write(lines)
    writer.close()
    return db


@pytest.fixture
def history(influx_db: InfluxQL) -> InfluxQL:
    """pwr-0001 sags, an hour ago; no `hist` field (points from before ingest stored it count as live)."""
    return write_meters(influx_db, 3, {"pwr-0001"})


def test_rescore_finds_the_past_sag(history):
    alerts = rescore(history, "power", "4h")
    assert [(a.device, a.metric, a.rule, a.severity) for a in alerts] == [
        ("pwr-0001", "voltage_v", "voltage_out_of_range", "critical")]
    assert alerts[0].end_ms - alerts[0].start_ms >= 10 * STEP
    assert rescore(history, "power", "4h", device="pwr-0002") == []
    assert rescore(history, "power", "4h", metric="frequency_hz") == []
    assert rescore(history, "water", "4h") == []  # nothing stored for that kind


@pytest.fixture
def backfilled(influx_db: InfluxQL) -> InfluxQL:
    """Both meters sag an hour ago: pwr-0001 was offline from 80 to 20 minutes ago and sent that hour late
    (hist=true), pwr-0002 was live all along."""
    return write_meters(influx_db, 5, {"pwr-0001", "pwr-0002"}, backfilled=range(100, 160))


def test_backfilled_readings_raise_no_alert_as_in_the_live_engine(backfilled):
    alerts = rescore(backfilled, "power", "4h")
    assert [(a.device, a.rule, a.hist) for a in alerts] == [("pwr-0002", "voltage_out_of_range", False)]


def test_include_hist_finds_the_fault_while_offline_and_marks_it(backfilled):
    alerts = rescore(backfilled, "power", "4h", include_hist=True)
    assert [(a.device, a.rule, a.hist) for a in alerts] == [
        ("pwr-0001", "voltage_out_of_range", True), ("pwr-0002", "voltage_out_of_range", False)]
    assert alerts[0].start_ms == alerts[1].start_ms  # the same sag, found at the same reading


def test_rescore_cli_include_hist(backfilled, monkeypatch):
    monkeypatch.setenv("CITY_INFLUX_URL", str(backfilled.http.base_url))
    monkeypatch.setenv("CITY_INFLUX_DB", backfilled.db)
    from telemetry_shared.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        live = runner.invoke(app, ["rescore", "power", "--since", "4h", "--json"])
        assert live.exit_code == 0, live.output
        assert [(a["device"], a["hist"]) for a in json.loads(live.stdout)] == [("pwr-0002", False)]
        assert "opened no alert" in runner.invoke(app, ["rescore", "power", "--since", "4h"]).stdout
        both = runner.invoke(app, ["rescore", "power", "--since", "4h", "--include-hist", "--json"])
        assert both.exit_code == 0, both.output
        assert [(a["device"], a["hist"]) for a in json.loads(both.stdout)] == [("pwr-0001", True), ("pwr-0002", False)]
        table = runner.invoke(app, ["rescore", "power", "--since", "4h", "--include-hist"], terminal_width=160)
        assert table.exit_code == 0 and "2 alerts" in table.stdout and "backfill" in table.stdout, table.stdout
    finally:
        get_settings.cache_clear()


def test_a_tried_parameter_changes_the_outcome(history):
    strict = parse_overrides(["open_score=1.01"])  # nothing can reach it
    assert rescore(history, "power", "4h", params=strict) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "gas"}, "unknown kind"),
    ({"kind": "power", "since": "24 hours"}, "duration"),
    ({"kind": "power", "since": "1h; DROP DATABASE city"}, "duration"),
    ({"kind": "power", "device": "x' OR '1'='1"}, "not a device id"),
    ({"kind": "power", "metric": "flow_lps"}, "not a power metric"),
])
def test_bad_requests_are_refused(history, kwargs, message):
    with pytest.raises(RescoreError, match=message):
        rescore(history, **kwargs)


@pytest.mark.parametrize("pairs, message", [
    (["nope=1"], "expected name=value"),
    (["z_mid"], "expected name=value"),
    (["z_mid=abc"], "not a valid float"),
    (["warmup=1.5"], "not a valid int"),
    (["z_mid=nan"], "not a valid float"),
    (["z_mid=-1"], "negative"),
    (["day_types=maybe"], "not a valid bool"),
    (["season_periods_ms=1"], "cannot be changed"),
])
def test_bad_overrides_are_refused(pairs, message):
    with pytest.raises(RescoreError, match=message):
        parse_overrides(pairs)


def test_overrides_apply():
    params = parse_overrides(["z_mid=6", "warmup=10", "day_types=false"])
    assert (params.z_mid, params.warmup, params.day_types) == (6.0, 10, False)
    assert DEFAULT_PARAMS.z_mid != 6.0  # the defaults are untouched


def test_rescore_cli(history, monkeypatch):
    monkeypatch.setenv("CITY_INFLUX_URL", str(history.http.base_url))
    monkeypatch.setenv("CITY_INFLUX_DB", history.db)
    from telemetry_shared.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["rescore", "power", "--since", "4h", "--json"])
        assert result.exit_code == 0, result.output
        assert [a["rule"] for a in json.loads(result.stdout)] == ["voltage_out_of_range"]
        table = runner.invoke(app, ["rescore", "power", "--since", "4h"])
        assert table.exit_code == 0 and "pwr-0001" in table.stdout and "voltage_out_of_range" in table.stdout
        bad = runner.invoke(app, ["rescore", "power", "--set", "nope=1"])
        assert bad.exit_code == 2 and "expected name=value" in bad.output
        monkeypatch.setenv("CITY_INFLUX_URL", "http://127.0.0.1:9")  # nothing listens there
        get_settings.cache_clear()
        down = runner.invoke(app, ["rescore", "power"])
        assert down.exit_code == 6 and "not reachable" in down.output  # service unreachable: 6 in every command
    finally:
        get_settings.cache_clear()
