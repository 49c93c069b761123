"""Rollups and retention on a real influxd, through `city rollup`: hourly and
daily min/mean/max/count per series match a plain Python reference over the
raw points, daily periods start at local midnight, re-running changes nothing,
the sequence audit counts missing messages, retention is what was configured."""

import json
import random
import time
from collections import defaultdict

import pytest
from typer.testing import CliRunner

from ingest.rollup import ROLLUP_RP, period_start, rollup_lines, shard_duration
from telemetry_cli.main import app
from telemetry_shared.influx import V1Writer

runner = CliRunner()
UTC_OFFSET_H = 7
HOUR_MS = 3_600_000


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """`city rollup run` renders the open-data files into $CITY_DATA_DIR/opendata-cache: a test's own."""
    monkeypatch.setenv("CITY_DATA_DIR", str(tmp_path))
    return tmp_path


def env_for(influx_db, **extra: str) -> dict[str, str]:
    return {"CITY_ENVIRONMENT": "test", "CITY_INFLUX_URL": str(influx_db.http.base_url),
            "CITY_INFLUX_DB": influx_db.db, "CITY_UTC_OFFSET_HOURS": str(UTC_OFFSET_H), "COLUMNS": "200"} | extra


def raw_points(now_ms: int) -> list[tuple[str, str, int, float, int]]:
    """(device, district, t_ms, flow_lps, seq) over the last 30 hours; seq 17 of wtr-0002 never arrives."""
    rng = random.Random(4)
    points = []
    for device, district in (("wtr-0001", "bukit-bestari"), ("wtr-0002", "tanjungpinang-kota")):
        t, seq = now_ms - 30 * HOUR_MS, 0
        while t < now_ms:
            if not (device == "wtr-0002" and seq == 17):
                for j in range(3):  # three samples a message
                    points.append((device, district, t + j, round(rng.uniform(-5, 400), 3), seq))
            t += rng.randint(20, 40) * 60_000
            seq += 1
    return points


def reference(points, period: str, end_ms: int) -> dict:
    """The obvious way: group in Python."""
    groups = defaultdict(list)
    seqs_of = defaultdict(set)
    for device, district, t, value, seq in points:
        start = period_start(t, period, UTC_OFFSET_H)
        if start + (HOUR_MS if period == "1h" else 24 * HOUR_MS) <= end_ms:
            groups[(device, district, start)].append(value)
            seqs_of[device].add(seq)
    out = {}
    for key, values in groups.items():
        out[key] = {"flow_lps_min": min(values), "flow_lps_max": max(values), "flow_lps_count": len(values),
                    "flow_lps_mean": sum(values) / len(values)}
    return out, {d: max(s) - min(s) + 1 - len(s) for d, s in seqs_of.items()}  # messages missing per device


def stored(influx_db, period: str) -> dict:
    rows = influx_db.rows(f'SELECT * FROM "{ROLLUP_RP}"."water_{period}"')
    return {(r["device"], r["district"], r["time"]): r for r in rows}


def test_rollups_match_a_reference_and_rerun_harmlessly(influx_db):
    env = env_for(influx_db)
    assert runner.invoke(app, ["rollup", "retention"], env=env).exit_code == 0
    now_ms = int(time.time() * 1000)
    points = raw_points(now_ms)
    V1Writer(str(influx_db.http.base_url), influx_db.db).write(
        [f"water,device={d},district={k} flow_lps={v!r},seq={s}i {t}" for d, k, t, v, s in points])
    result = runner.invoke(app, ["rollup", "run", "--lookback-h", "40", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = {r["period"]: r for r in json.loads(result.stdout)["data"]}
    for period in ("1h", "1d"):
        expected, missing = reference(points, period, report[period]["end_ms"])
        got = stored(influx_db, period)
        assert set(got) == set(expected) and report[period]["points"] == len(expected)
        for key, want in expected.items():
            for field, value in want.items():
                assert got[key][field] == pytest.approx(value, rel=1e-9), (period, key, field)
        for _device, _district, start in got:
            assert period != "1d" or (start / 1000 + UTC_OFFSET_H * 3600) % 86_400 == 0  # local midnight
        assert missing["wtr-0001"] == 0 and (period == "1d" or missing["wtr-0002"] == 1)
        gaps = {k: r["seq_gaps"] for k, r in got.items()}
        for device, count in missing.items():  # seq 17 is found missing, once, hourly and daily
            assert sum(v for (d, _, _), v in gaps.items() if d == device) == count, (period, gaps)

    before = stored(influx_db, "1h")
    assert runner.invoke(app, ["rollup", "run", "--lookback-h", "40"], env=env).exit_code == 0
    assert stored(influx_db, "1h") == before  # recomputed, overwritten, nothing doubled


def test_retention_is_what_was_configured(influx_db):
    result = runner.invoke(app, ["rollup", "retention", "--json"], env=env_for(influx_db, CITY_RAW_RETENTION="30d"))
    assert result.exit_code == 0, result.output
    policies = {p["name"]: p["duration"] for p in json.loads(result.stdout)["data"]}
    assert policies == {"autogen": "720h0m0s", "rollups": "0s"}
    rows = {r["name"]: r for r in influx_db.rows("SHOW RETENTION POLICIES")}
    assert rows["autogen"]["default"] is True and rows["autogen"]["shardGroupDuration"] == "24h0m0s"
    table = runner.invoke(app, ["rollup", "retention"], env=env_for(influx_db, CITY_RAW_RETENTION="2d"))
    assert table.exit_code == 0 and "48h0m0s" in table.stdout and "ever" in table.stdout
    assert [shard_duration(r) for r in ("12h", "2d", "26w", "INF")] == ["1h", "1d", "7d", "7d"]


def test_run_without_the_rollups_policy_says_what_to_do(influx_db):
    result = runner.invoke(app, ["rollup", "run"], env=env_for(influx_db))
    assert result.exit_code == 6 and "city rollup retention" in result.output


@pytest.mark.parametrize("args,extra", [
    (["run", "--lookback-h", "0"], {}), (["run", "--lookback-h", "99999999"], {}), (["run", "--every-s", "-1"], {}),
    (["run", "--lookback-h", "ten"], {}), (["retention"], {"CITY_RAW_RETENTION": "90 days; DROP DATABASE city"}),
    (["retention"], {"CITY_RAW_RETENTION": "-1d"}), (["run"], {"CITY_ROLLUP_LOOKBACK_H": "0"}),
])
def test_bad_input_is_refused_clearly(influx_db, args, extra):
    result = runner.invoke(app, ["rollup", *args], env=env_for(influx_db, **extra))
    assert result.exit_code == 2, result.output
    assert [r["name"] for r in influx_db.rows("SHOW DATABASES") if r["name"] == influx_db.db] == [influx_db.db]


def test_daily_rollups_follow_a_daylight_saving_zone(influx_db):
    """New York springs forward on 2026-03-08 and falls back on 2026-11-01: those local days have 23 and 25
    hours, and each daily rollup starts at its own local midnight (05:00 UTC in winter, 04:00 in summer)."""
    from datetime import UTC, datetime

    from ingest.rollup import ensure_retention, local_midnights, run_rollup

    def utc(*args) -> int:
        return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)

    assert local_midnights(utc(2026, 3, 7, 12), utc(2026, 3, 10, 0), "America/New_York") == [
        utc(2026, 3, 7, 5), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), utc(2026, 3, 10, 4)]
    influx = influx_db
    ensure_retention(influx, "3650d")
    lines = []
    for first, last in ((utc(2026, 3, 7, 0), utc(2026, 3, 10, 12)), (utc(2026, 10, 31, 0), utc(2026, 11, 3, 12))):
        lines += [f"water,device=wtr-0001,district=x flow_lps=1.0,seq={n}i {t}"
                  for n, t in enumerate(range(first, last, HOUR_MS))]  # one reading an hour
    V1Writer(str(influx_db.http.base_url), influx_db.db).write(lines)
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db, rp=ROLLUP_RP)
    for start, end in ((utc(2026, 3, 7, 12), utc(2026, 3, 10, 12)), (utc(2026, 10, 31, 12), utc(2026, 11, 3, 12))):
        report = run_rollup(influx, writer, "1d", start, end, -5, "America/New_York")
        assert report.points == 3, report
    days = {r["time"]: r["flow_lps_count"] for r in influx_db.rows(
        f'SELECT flow_lps_count FROM "{ROLLUP_RP}"."water_1d"')}
    assert days == {utc(2026, 3, 7, 5): 24, utc(2026, 3, 8, 5): 23, utc(2026, 3, 9, 4): 24,
                    utc(2026, 10, 31, 4): 24, utc(2026, 11, 1, 4): 25, utc(2026, 11, 2, 5): 24}


def test_a_period_without_a_distinct_count_is_rolled_up_without_gaps_rather_than_crashing() -> None:
    """influxd answered a live city's backfilled period with max(seq) but a null count(distinct(seq)):
    the rollup service died on it and the supervisor restarted it, losing the whole run."""
    columns = ["time", "flow_lps_mean", "seq_min", "seq_max", "seq_distinct"]
    series = [{"tags": {"device": "wtr-0001", "district": "d1"}, "columns": columns,
               "values": [[0, 2.0, 1, 10, None], [3_600_000_000_000, 2.5, 11, 20, 8]]}]
    last_seq: dict[str, int] = {}
    first, second = rollup_lines("water", "1h", series, last_seq)
    assert "seq_gaps" not in first and "seq_max=10i" in first and "flow_lps_mean=2.0" in first
    assert "seq_gaps=2i" in second  # 20 - 11 + 1 - 8, the sequence still carried across
    assert last_seq == {"wtr-0001": 20}


def test_a_rollup_run_renders_the_open_data_files_whose_cells_it_wrote(influx_db, data_dir):
    """The first download of a month after the job ran is a cache hit (api/opendata/prerender.py)."""
    env = env_for(influx_db)
    assert runner.invoke(app, ["rollup", "retention"], env=env).exit_code == 0
    now_ms = int(time.time() * 1000)
    start = (now_ms // HOUR_MS - 3) * HOUR_MS
    V1Writer(str(influx_db.http.base_url), influx_db.db).write(
        [f"water,device=wtr-{n},district=bukit-bestari flow_lps={10.0 + n} {t}"
         for n in range(3) for t in range(start, now_ms, 600_000)])
    result = runner.invoke(app, ["rollup", "run", "--lookback-h", "4", "--json"], env=env)
    assert result.exit_code == 0, result.output
    files = sorted((data_dir / "opendata-cache" / "water-flow_lps").glob("*.csv"))
    months = [f for f in files if len(f.name.split(".")[0]) == 7]
    assert months and files != months  # the month and its days
    body = months[-1].read_text()
    assert body.startswith("time,district,value,") and ",bukit-bestari,11.0,10,12,33,3,18" in body
