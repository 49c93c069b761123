"""Scaling down without loss, with a real Mosquitto and influxd: a stopped
member of the shared group goes on collecting its share in its durable
session; `city ingest retire-worker N` stores what it holds and ends the
session, after which the remaining worker gets everything."""

import os
import subprocess
import sys
import threading
import time

import pytest

from ingest.mqtt import MqttSubscriber
from ingest.spool import hold_spool
from telemetry_shared import broker
from telemetry_shared.influx import InfluxQL
from tests.conftest import ROOT, SERVICE_PASSWORD
from tests.ingest.streaming import Fleet, WorkerProcess, fleet_users, register, wait_until_stored

pytestmark = pytest.mark.slow


def session_exists(port: int, instance: int) -> bool:
    """Connect as svc-ingest-N without a clean start: does the broker still keep its session?"""
    found: list[bool] = []
    done = threading.Event()

    class Handler:
        def on_connect(self, generation, session_present):
            found.append(session_present)
            done.set()

        def on_messages(self, messages):
            pass

        def on_subscribed(self, failures):
            pass

        def on_disconnect(self, reason):
            pass

    user = broker.service_user("ingest", instance)
    client = MqttSubscriber("127.0.0.1", port, user, user, SERVICE_PASSWORD, Handler())
    client.start()
    assert done.wait(10)
    client.stop()  # a plain DISCONNECT keeps whatever there is as it was
    return found[0]


def test_retire_worker_drains_the_stopped_members_share(make_mosquitto, make_influxd, registry, tmp_path):
    users = fleet_users(4)
    mosquitto = make_mosquitto(users=users)
    influxd = make_influxd()
    influx = InfluxQL(influxd.url, "city")
    influx.create_database()
    register(registry, sorted(users))
    first = WorkerProcess(tmp_path, mosquitto, influxd.url, "city", registry.path, 0, CITY_INGEST_WORKERS="2").start()
    second = WorkerProcess(tmp_path, mosquitto, influxd.url, "city", registry.path, 1, CITY_INGEST_WORKERS="2").start()
    fleet = Fleet(mosquitto, sorted(users), rate_hz=20).start()
    try:
        time.sleep(2)
        assert second.stop() == 0  # scaled down: its share now piles up in its session
        time.sleep(3)
        before = first.metrics()["ingest_received_total"]
        retired = subprocess.run([sys.executable, "-m", "telemetry_cli.main", "ingest", "retire-worker", "1",
                                  "--json"], cwd=ROOT, env=second.env, capture_output=True, text=True, timeout=120)
        assert retired.returncode == 0, retired.stderr
        assert '"worker_id": "ingest-1"' in retired.stdout and '"messages": 0' not in retired.stdout
        assert not session_exists(mosquitto.port, 1)  # the broker forgot the identity
        time.sleep(2)  # from now on the remaining worker gets every message
        fleet.stop()
        wait_until_stored(influx, fleet, timeout_s=30)
        assert first.metrics()["ingest_received_total"] - before >= 4 * 20 * 2
    finally:
        first.stop()


def retire_worker(env: dict[str, str], instance: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "telemetry_cli.main", "ingest", "retire-worker", str(instance)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_running_worker_is_not_retired(make_mosquitto, make_influxd, registry, tmp_path):
    """Refused with exit code 4 whether the worker runs on this machine (it holds its spool) or on
    another (it takes its broker session back): its session and subscription stay, nothing is lost."""
    users = fleet_users(3)
    mosquitto = make_mosquitto(users=users)
    influxd = make_influxd()
    influx = InfluxQL(influxd.url, "city")
    influx.create_database()
    register(registry, sorted(users))
    worker = WorkerProcess(tmp_path, mosquitto, influxd.url, "city", registry.path, 0).start()
    fleet = Fleet(mosquitto, sorted(users), rate_hz=20).start()
    try:
        time.sleep(1)
        here = retire_worker(worker.env, 0)  # the same machine: its spool is held
        assert here.returncode == 4, here.stdout + here.stderr
        assert "ingest-0 is still running" in here.stderr and "pid" in here.stderr
        elsewhere = dict(worker.env, CITY_DATA_DIR=str(tmp_path / "other-host"))  # another machine: the broker
        started = time.monotonic()
        there = retire_worker(elsewhere, 0)
        assert there.returncode == 4, there.stdout + there.stderr
        assert "took its broker session" in there.stderr and time.monotonic() - started < 30
        assert session_exists(mosquitto.port, 0)
        before = worker.metrics()["ingest_received_total"]
        time.sleep(2)
        assert worker.metrics()["ingest_received_total"] > before  # still subscribed, still taking its stream
        fleet.stop()
        wait_until_stored(influx, fleet, timeout_s=30)  # nothing lost, though its session was taken once
    finally:
        if not fleet.stop_flag.is_set():
            fleet.stop()
        worker.stop()
    started_while_retiring = WorkerProcess(tmp_path, mosquitto, influxd.url, "city", registry.path, 0)
    lock = hold_spool(tmp_path / "var" / "spool" / "ingest-0")  # as a retirement in progress holds it
    try:
        with pytest.raises(AssertionError, match="already runs or is being retired"):
            started_while_retiring.start()  # refuses to start
    finally:
        os.close(lock)
