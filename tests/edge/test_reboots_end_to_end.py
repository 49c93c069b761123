"""A device that loses power 5 times within a minute (kill -9 of the real
`micropython` agent, over TLS), end to end through Mosquitto and a real ingest
worker into influxd: each boot has its own boot id and starts again at seq 0,
and nothing it sends is refused: 0 dead letters, every reading the broker
accepted is stored."""

import os
import shutil
import signal
import time

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_shared import broker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.conftest import make_settings, wait_for
from tests.edge.mqtt_watch import Watcher, device_config, start_agent

DEVICE = "wtr-boot-0001"
REBOOTS = 5


def test_five_reboots_in_a_minute_lose_nothing(micropython_bin, edge_dir, make_mosquitto, local_ca, influx_db,
                                               registry, tmp_path):
    secret = broker.new_secret()
    mosquitto = make_mosquitto(users={DEVICE: broker.hash_password(secret)},
                               tls=(local_ca.server_crt, local_ca.server_key))
    registry.add(DeviceNew(id=DEVICE, kind="water", district="bukit-bestari", lat=0.92, lon=104.45))
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db,
                             mqtt_user=broker.service_user("ingest", 1))  # the watcher is ingest-0
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    worker = IngestWorker(settings, registry, V1Writer(settings.influx_url, settings.influx_db), dead)
    worker.start()
    watch = Watcher(mosquitto.port, [contract.telemetry_topic(DEVICE)]).start()
    shutil.copyfile(local_ca.ca_der, edge_dir / "ca.der")
    config = device_config(DEVICE, "water", mosquitto.tls_port, secret, ca_path="ca.der",
                           server_hostname="localhost", interval_ms=250, batch_size=2, buffer_capacity=30,
                           spool_path="spool.jsonl")
    started = time.monotonic()
    try:
        for _ in range(REBOOTS):
            agent = start_agent(micropython_bin, edge_dir, config, 60_000)
            seen = len(watch.telemetry())
            wait_for(lambda seen=seen: len(watch.telemetry()) >= seen + 3, timeout_s=15)
            os.kill(agent.pid, signal.SIGKILL)  # the power cut
            agent.wait(5)
        rebooted_in_s = time.monotonic() - started
        last = start_agent(micropython_bin, edge_dir, config, 3000)  # the sixth boot runs and stops cleanly
        last.wait(30)
        time.sleep(0.5)
        arrivals = watch.telemetry()
        accepted = sorted({row[0] for a in arrivals for row in a.body["r"]})
        rows = wait_for(lambda: len(r := influx_db.rows(f"SELECT * FROM \"water\" WHERE device = '{DEVICE}'"))
                        >= len(accepted) and r, timeout_s=20)
    finally:
        watch.stop()
        worker.stop()
    assert rebooted_in_s < 60, f"{REBOOTS} reboots took {rebooted_in_s:.0f} s"
    boots = [a.body["boot"] for a in arrivals]
    assert len(set(boots)) == REBOOTS + 1  # a new identity at every boot
    for boot in set(boots):
        seqs = [a.body["seq"] for a in arrivals if a.body["boot"] == boot]
        assert seqs[0] == 0  # each boot starts again at seq 0, which ingest must not refuse
    assert dead.counts() == {}, dead.counts()
    assert sorted({r["time"] for r in rows}) == accepted  # every reading the broker accepted is stored
