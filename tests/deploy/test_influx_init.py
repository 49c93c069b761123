"""deploy/influxdb/init-retention.sh, sourced as the influxdb:1.8 image's init does,
against a real influxd with Debian's `influx` CLI."""

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_shared.influx import InfluxQL

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "influxdb" / "init-retention.sh"


@pytest.fixture
def fresh_db(shared_influxd) -> Iterator[tuple[InfluxQL, str]]:
    if not shutil.which("influx"):
        pytest.fail("`influx` is not installed: apt-get install influxdb-client", pytrace=False)
    name = f"init_{secrets.token_hex(4)}"
    db = InfluxQL(shared_influxd.url, name)
    db.create_database()
    yield db, f"influx -host 127.0.0.1 -port {shared_influxd.port} -execute "
    db.raw(f'DROP DATABASE "{name}"', method="POST")
    db.close()


def source(influx_cmd: str, db: str, retention: str | None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "INFLUX_CMD": influx_cmd, "INFLUXDB_DB": db}
    if retention is not None:
        env["CITY_RAW_RETENTION"] = retention
    # The image's init-influxdb.sh is bash and sources every *.sh of /docker-entrypoint-initdb.d.
    return subprocess.run(["bash", "-c", f'. "{SCRIPT}"; echo after-the-script'], env=env, capture_output=True,
                          text=True, timeout=30)


def policies(db: InfluxQL) -> dict[str, tuple[str, bool]]:
    rows = db.rows(f'SHOW RETENTION POLICIES ON "{db.db}"')
    return {row["name"]: (row["duration"], row["default"]) for row in rows}


def shards(db: InfluxQL) -> dict[str, str]:
    return {row["name"]: row["shardGroupDuration"] for row in db.rows(f'SHOW RETENTION POLICIES ON "{db.db}"')}


@pytest.mark.parametrize(("retention", "duration"), [(None, "2160h0m0s"), ("", "2160h0m0s"), ("30d", "720h0m0s"),
                                                     ("24h", "24h0m0s"), ("52w", "8736h0m0s"), ("INF", "0s")])
def test_raw_retention_and_rollups_policy_as_the_rollup_job_sets_them(fresh_db, retention, duration) -> None:
    db, cmd = fresh_db
    done = source(cmd, db.db, retention)
    assert done.returncode == 0 and "after-the-script" in done.stdout, done.stderr
    assert policies(db) == {"autogen": (duration, True), "rollups": ("0s", False)}
    # the same shard group duration ingest/rollup.py's ensure_retention would choose
    expected = {"24h": "1h0m0s", "52w": "168h0m0s", "INF": "168h0m0s"}.get(retention or "", "24h0m0s")
    assert shards(db)["autogen"] == expected


@pytest.mark.parametrize("retention", ["90d; DROP DATABASE x", "90d\nDROP DATABASE x", "ninety days", "-1d",
                                       "9" * 5000 + "x"])
def test_a_bad_retention_fails_the_init_and_changes_nothing(fresh_db, retention) -> None:
    db, cmd = fresh_db
    before = policies(db)
    done = source(cmd, db.db, retention)
    assert done.returncode == 1 and "after-the-script" not in done.stdout
    assert "CITY_RAW_RETENTION must look like 90d" in done.stderr
    assert policies(db) == before
