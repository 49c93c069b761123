"""Analytics sharded by device: a stable owner per device, a third moving from 2 to 3 workers, the learnt state
moving with its devices, and 2 and 4 workers on real Mosquitto and influxd scoring the same alerts as 1."""

import os
import subprocess
import sys
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from analytics.service import EngineService
from analytics.shards import ShardFilter, owner
from analytics.state import load_shard, save_state, state_file
from edge import contract
from telemetry_shared import broker
from telemetry_shared.influx import InfluxQL, V1Writer
from telemetry_shared.registry import DeviceNew
from tests.analytics.test_state import DAY_MS, HOUR_MS, MONDAY, POWER, WATER, day_messages, run
from tests.conftest import make_settings

IDS = [f"pwr-{i:05d}" for i in range(10_000)]


def test_a_device_always_lands_on_the_same_worker_whatever_the_process():
    here = [owner(device, 4) for device in IDS[:200]]
    code = "from analytics.shards import owner; print([owner(f'pwr-{i:05d}', 4) for i in range(200)])"
    for seed in ("1", "2"):  # Python's own hash() changes with PYTHONHASHSEED; the owner must not
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=os.environ | {"PYTHONHASHSEED": seed}).stdout
        assert eval(out) == here  # noqa: S307 - a list of ints printed by the line above
    assert sorted(set(here)) == [0, 1, 2, 3]


@pytest.mark.parametrize("before, after", [(1, 2), (2, 3), (3, 4), (4, 8)])
def test_adding_a_worker_moves_only_its_share_to_it(before, after):
    old = [owner(device, before) for device in IDS]
    new = [owner(device, after) for device in IDS]
    moved = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    share = (after - before) / after  # 2 -> 3: a third
    assert abs(len(moved) / len(IDS) - share) < 0.03
    assert all(b >= before for _, b in moved)  # only to the new workers, never between the old ones
    counts = np.bincount(new, minlength=after)
    assert counts.min() > 0.85 * len(IDS) / after and counts.max() < 1.15 * len(IDS) / after


def test_a_shard_filter_refuses_a_share_that_does_not_exist():
    with pytest.raises(ValueError):
        ShardFilter(2, 2)
    assert ShardFilter(0, 1).owns("anything-at-all")


def test_the_learnt_state_moves_with_the_devices_when_workers_are_added(registry, tmp_path):
    """One worker's state split over 2, then 3 workers: each device's arrays and incidents end with its owner,
    exactly as learnt, and none is lost or doubled; a worker restarted alone gets its own share back."""
    registry.add(DeviceNew(id=POWER, kind="power", district="tanjungpinang-timur"))
    registry.add(DeviceNew(id=WATER, kind="water", district="bukit-bestari"))
    params = EngineParams(buffer_samples=240, profile_days=3)
    single = AnalyticsEngine(registry, None, None, params)
    third = day_messages(2, fault_from_ms=MONDAY + 2 * DAY_MS + 8 * HOUR_MS)
    run(single, day_messages(0) + day_messages(1) + third[:120])
    assert (POWER, "readings") in single.learnt.incidents  # an open incident, to move too
    folder = tmp_path / "analytics"
    saved_ms = third[119][0]
    save_state(single.learnt, state_file(folder, "svc-analytics-0"), now_ms=saved_ms)
    for workers in (2, 3):
        engines = []
        for k in range(workers):
            engine = AnalyticsEngine(registry, None, None, params)
            assert load_shard(engine, state_file(folder, f"svc-analytics-{k}"),
                              ShardFilter(k, workers).owns, now_ms=saved_ms)
            engines.append(engine)
        for device in (POWER, WATER):
            holders = [k for k, e in enumerate(engines) if device in e.learnt.last_seen_ms]
            assert holders == [owner(device, workers)]
            mine = engines[holders[0]].learnt
            for metric, block in single.learnt.blocks.items():
                if (device,) in block.row_of:
                    row, other = block.row_of[(device,)], mine.blocks[metric].row_of[(device,)]
                    np.testing.assert_array_equal(mine.blocks[metric].values[other], block.values[row])
                    np.testing.assert_array_equal(mine.history[metric].window(np.array([other]))[0],
                                                  single.learnt.history[metric].window(np.array([row]))[0])
            assert {k: v for k, v in mine.incidents.items() if k[0] == device} == \
                {k: v for k, v in single.learnt.incidents.items() if k[0] == device}
        for k, engine in enumerate(engines):
            save_state(engine.learnt, state_file(folder, f"svc-analytics-{k}"), now_ms=saved_ms + 1)
    # Another worker's file that cannot be read is skipped and left where it is (it is that worker's).
    (folder / "engine-svc-analytics-7.npz").write_bytes(b"not a state file")
    # The one-worker file is older than the three: a device is taken from the newest file that holds it.
    again = AnalyticsEngine(registry, None, None, params)
    k = owner(POWER, 3)
    assert load_shard(again, state_file(folder, f"svc-analytics-{k}"), ShardFilter(k, 3).owns, now_ms=saved_ms)
    assert POWER in again.learnt.last_seen_ms and (POWER, "readings") in again.learnt.incidents
    assert (folder / "engine-svc-analytics-7.npz").exists() and again.counters["state_rejected"] == 0


# ---------------------------------------------------------------- real broker and influxd


DEVICES = [f"pwr-sh-{i:03d}" for i in range(12)]


def stream(start_ms: int) -> list[tuple[str, bytes]]:
    """An hour of per-minute voltage from 12 meters, 10 readings a message; every third meter dips below the
    limit for 5 minutes (one alert opened and cleared each), meter 1 is stuck at a fixed reading later."""
    out = []
    for first in range(0, 60, 10):
        for i, device in enumerate(DEVICES):
            samples = []
            for minute in range(first, first + 10):
                volts = 230.0 + (i % 5) * 0.3 + 0.7 * np.sin(minute / 3 + i)
                if i % 3 == 0 and 20 + i <= minute < 25 + i:
                    volts = 180.0 + i
                samples.append((start_ms + minute * 60_000, {"voltage_v": round(float(volts), 2)}))
            out.append((device, contract.encode_telemetry(first, samples, "1.0")))
    return out


def test_two_and_four_workers_score_the_same_alerts_as_one(make_mosquitto, registry, shared_influxd, tmp_path):
    secrets = {device: broker.new_secret() for device in DEVICES}
    mosquitto = make_mosquitto(users={d: broker.hash_password(s) for d, s in secrets.items()})
    for device in DEVICES:
        registry.add(DeviceNew(id=device, kind="power", district="tanjungpinang-timur"))
    params = EngineParams(buffer_samples=120, batch_ms=100, silence_check_s=3600)
    groups = {1: [], 2: [], 4: []}
    user = 0
    databases = {}
    try:
        for workers in groups:
            databases[workers] = InfluxQL(shared_influxd.url, f"shards_{workers}_{os.getpid()}")
            databases[workers].create_database()
            for k in range(workers):
                settings = make_settings(tmp_path, mosquitto, mqtt_user=f"svc-analytics-{user}",
                                         analytics_shards=workers, analytics_shard=k,
                                         analytics_state_dir=str(tmp_path / f"state-{workers}"))
                writer = V1Writer(shared_influxd.url, databases[workers].db)
                service = EngineService(settings, registry, writer, params)
                service.start()
                groups[workers].append(service)
                user += 1
        services = [s for group in groups.values() for s in group]
        assert all(s.connected.wait(15) for s in services)
        clients = {}
        for device in DEVICES:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311)
            client.username_pw_set(device, secrets[device])
            client.connect("127.0.0.1", mosquitto.port)
            client.loop_start()
            clients[device] = client
        start_ms = int(time.time() * 1000) - HOUR_MS
        messages = stream(start_ms)
        for device, payload in messages:
            clients[device].publish(contract.telemetry_topic(device), payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                sum(s.engine.counters["messages"] for s in group) < len(messages) for group in groups.values()):
            time.sleep(0.1)
        for workers, group in groups.items():
            assert sum(s.engine.counters["messages"] for s in group) == len(messages), workers
            assert sum(s.engine.counters["other_shard"] for s in group) == len(messages) * (workers - 1)
        time.sleep(1.0)  # the last pass and its writes
        for client in clients.values():
            client.loop_stop()
    finally:
        for group in groups.values():
            for service in group:
                service.stop()

    def alerts(workers: int) -> list[tuple]:
        rows = databases[workers].rows('SELECT * FROM "alerts"')
        # Their ids hold when each began (device time); the row's own time is when the engine sent it.
        return sorted((r["device"], r["rule"], r["state"], r["severity"], r["id"]) for r in rows)

    one = alerts(1)
    try:
        assert {a[0] for a in one if a[2] == "active"} == {d for i, d in enumerate(DEVICES) if i % 3 == 0}
        assert alerts(2) == one and alerts(4) == one
        # Each worker of four scored its own share only, and together they scored every device.
        shares = [set(s.engine.learnt.last_seen_ms) for s in groups[4]]
        assert set().union(*shares) == set(DEVICES) and sum(len(s) for s in shares) == len(DEVICES)
        for k, share in enumerate(shares):
            assert all(owner(device, 4) == k for device in share)
        # A worker of two restarted resumes its share from its own file.
        restarted = EngineService(groups[2][1].settings, registry, None, params)
        restarted.start()
        try:
            assert restarted.connected.wait(15) and restarted.state_loaded
            assert set(restarted.engine.learnt.last_seen_ms) == set(groups[2][1].engine.learnt.last_seen_ms)
        finally:
            restarted.stop()
    finally:
        for db in databases.values():
            db.raw(f'DROP DATABASE "{db.db}"', method="POST")
            db.close()
