"""Scaling down without loss, with a real Mosquitto and influxd: a stopped
member of the shared group goes on collecting its share in its durable
session; `city ingest retire-worker N` stores what it holds and ends the
session, after which the remaining worker gets everything."""

import subprocess
import sys
import threading
import time

import pytest

from ingest.mqtt import MqttSubscriber
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
