"""Fault injection with real parts, each bounded in time: a steady stream from
a small fleet through Mosquitto and `python -m ingest` into influxd, while
InfluxDB is killed or frozen, workers are killed, the broker restarts.
Afterwards every (device, seq) published is queryable, none twice."""

import time

import pytest

from telemetry_shared.influx import InfluxQL
from tests.ingest.streaming import Fleet, WorkerProcess, fleet_users, register, wait_until_stored

DEVICES = 4
pytestmark = pytest.mark.slow


@pytest.fixture
def city(make_mosquitto, make_influxd, registry, tmp_path):
    """Broker, an influxd of our own and a registered fleet."""
    users = fleet_users(DEVICES)
    mosquitto = make_mosquitto(users=users)
    influxd = make_influxd()
    influx = InfluxQL(influxd.url, "city")
    influx.create_database()
    register(registry, sorted(users))
    workers: list[WorkerProcess] = []

    def worker(instance: int = 0, **extra: str) -> WorkerProcess:
        w = WorkerProcess(tmp_path, mosquitto, influxd.url, "city", registry.path, instance, **extra).start()
        workers.append(w)
        return w

    yield mosquitto, influxd, influx, sorted(users), worker
    for w in workers:
        if w.proc and w.proc.poll() is None:
            w.kill()


def test_influxd_killed_for_30s(city):
    mosquitto, influxd, influx, devices, worker = city
    ingest = worker()
    fleet = Fleet(mosquitto, devices).start()
    time.sleep(3)
    influxd.kill()
    time.sleep(30)
    influxd.start()
    time.sleep(2)
    fleet.stop()
    wait_until_stored(influx, fleet, timeout_s=30)
    counters = ingest.metrics()
    assert counters["ingest_spooled_total"] > 0
    assert counters["ingest_replayed_total"] == counters["ingest_spooled_total"]
    assert ingest.stop() == 0


def test_influxd_frozen_for_30s(city):
    mosquitto, influxd, influx, devices, worker = city
    ingest = worker()
    fleet = Fleet(mosquitto, devices).start()
    time.sleep(3)
    influxd.pause()
    try:
        time.sleep(30)
        counters = ingest.metrics()
    finally:
        influxd.resume()
    time.sleep(2)
    fleet.stop()
    wait_until_stored(influx, fleet, timeout_s=30)
    timeout_s = 2.0  # CITY_INFLUX_TIMEOUT_S of the worker
    assert counters["ingest_spooled_total"] > 0
    assert counters["ingest_write_seconds_max"] < timeout_s + 1.0, counters  # no write stuck past its timeout
    assert ingest.stop() == 0


def test_worker_killed_repeatedly(city):
    mosquitto, _, influx, devices, worker = city
    ingest = worker()
    fleet = Fleet(mosquitto, devices, rate_hz=20).start()
    for _ in range(4):
        time.sleep(3)
        ingest.kill()
        ingest.start()
    time.sleep(2)
    fleet.stop()
    wait_until_stored(influx, fleet, timeout_s=30)
    assert ingest.stop() == 0


def test_broker_restarted_gracefully(city):
    mosquitto, _, influx, devices, worker = city
    ingest = worker()
    fleet = Fleet(mosquitto, devices).start()
    time.sleep(4)
    mosquitto.stop()
    time.sleep(2)
    mosquitto.start()
    time.sleep(4)
    fleet.stop()
    wait_until_stored(influx, fleet, timeout_s=30)
    assert ingest.metrics()["ingest_mqtt_connects_total"] >= 2
    assert ingest.stop() == 0


def test_two_workers_split_the_stream(city):
    mosquitto, _, influx, devices, worker = city
    first, second = worker(0, CITY_INGEST_WORKERS="2"), worker(1, CITY_INGEST_WORKERS="2")
    fleet = Fleet(mosquitto, devices, rate_hz=20).start()
    time.sleep(6)
    fleet.stop()
    wait_until_stored(influx, fleet, timeout_s=30)
    received = [first.metrics()["ingest_received_total"], second.metrics()["ingest_received_total"]]
    published = sum(fleet.published.values())
    assert sum(received) >= published and min(received) > published / 4, (received, published)
    assert first.stop() == 0 and second.stop() == 0
    # Their counters reach InfluxDB too, one series per worker, for Grafana.
    workers = {row["worker"] for row in influx.rows('SELECT last("received") FROM "ingest_stats" GROUP BY "worker"')}
    assert workers == {"ingest-0", "ingest-1"}
