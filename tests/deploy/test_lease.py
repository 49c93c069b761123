"""deploy/lease.py: scaled replicas get fixed, distinct, durable identities (real
processes, real flock), and a replica beyond the configured workers refuses to start."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOW_IDENTITY = ("import os, time; "
                 "print(os.environ['CITY_INGEST_WORKER_ID'], os.environ['CITY_MQTT_USER'], flush=True); "
                 "time.sleep(20)")


def start(lease_dir: Path, workers: str = "3", service: str = "ingest", code: str = SHOW_IDENTITY) -> subprocess.Popen:
    env = dict(os.environ, CITY_INGEST_WORKERS=workers, CITY_ANALYTICS_SHARDS=workers)
    return subprocess.Popen([sys.executable, "-m", "deploy.lease", service, "--dir", str(lease_dir), "--",
                             sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def identity_of(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return line


def finish(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_three_replicas_are_ingest_0_1_2_and_a_restarted_one_gets_its_identity_back(tmp_path: Path) -> None:
    procs = [start(tmp_path)]
    identities = [identity_of(procs[0])]
    for _ in range(2):  # one after another, as compose starts replicas; each takes the lowest free slot
        procs.append(start(tmp_path))
        identities.append(identity_of(procs[-1]))
    try:
        assert identities == ["ingest-0 svc-ingest-0", "ingest-1 svc-ingest-1", "ingest-2 svc-ingest-2"]
        finish(procs[1])  # ingest-1 dies (kill -9: the lock goes with the process)
        replacement = start(tmp_path)
        procs.append(replacement)
        assert identity_of(replacement) == "ingest-1 svc-ingest-1"
    finally:
        finish(*procs)


def test_a_replica_beyond_the_configured_workers_refuses_to_start(tmp_path: Path) -> None:
    first = start(tmp_path, workers="1")
    try:
        assert identity_of(first) == "ingest-0 svc-ingest-0"
        second = start(tmp_path, workers="1")
        assert second.wait(10) == 1
        assert "set CITY_INGEST_WORKERS to the number of replicas" in second.stderr.read()
        finish(second)
    finally:
        finish(first)


@pytest.mark.parametrize(("workers", "message"), [("0", "from 1 to 8"), ("99", "from 1 to 8"),
                                                   ("three", "must be a number"), ("1" * 5000, "must be a number")])
def test_bad_worker_counts_are_refused_clearly(tmp_path: Path, workers: str, message: str) -> None:
    proc = start(tmp_path, workers=workers)
    assert proc.wait(10) == 1
    assert message in proc.stderr.read()
    finish(proc)


def test_other_services_get_their_own_accounts(tmp_path: Path) -> None:
    proc = start(tmp_path, service="analytics", code="import os; print(os.environ['CITY_MQTT_USER'])")
    assert proc.wait(10) == 0 and proc.stdout.read().strip() == "svc-analytics-0"
    finish(proc)


def test_each_analytics_replica_gets_its_share_and_no_more_than_the_shards(tmp_path: Path) -> None:
    code = "import os, time; print(os.environ['CITY_ANALYTICS_SHARD'], os.environ['CITY_MQTT_USER'], flush=True); " \
        "time.sleep(30)"
    first, second = (start(tmp_path, workers="2", service="analytics", code=code) for _ in range(2))
    try:
        assert sorted([identity_of(first), identity_of(second)]) == ["0 svc-analytics-0", "1 svc-analytics-1"]
        third = start(tmp_path, workers="2", service="analytics", code=code)
        assert third.wait(10) == 1 and "set CITY_ANALYTICS_SHARDS to the number of replicas" in third.stderr.read()
        finish(third)
    finally:
        finish(first)
        finish(second)


@pytest.mark.parametrize("args", [["ingest"], ["ingest", "--"], ["nosuchservice", "--", "true"]])
def test_bad_arguments_are_refused(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "deploy.lease", "--dir", str(tmp_path), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "usage" in done.stderr


def test_a_command_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "deploy.lease", "--dir", str(tmp_path), "api", "--",
                           "/nonexistent/binary"], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 127 and "cannot run" in done.stderr
    time.sleep(0)  # the lease file stays for the next holder
    assert (tmp_path / "api-0.lock").exists()
