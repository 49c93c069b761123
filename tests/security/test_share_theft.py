"""Issue 14: a registered device joining the ingest workers' shared subscription
(`$share/ingest/...`) used to be granted (Mosquitto's ACL file checks only at
delivery), stayed in the round-robin and 24 % of the readings were lost. With the
dynamic-security roles it is refused at SUBSCRIBE time: with 2 and 4 real ingest
workers (the compose command line) and a device trying every subscription it can
think of, every acknowledged reading reaches InfluxDB."""

import time
from pathlib import Path

import pytest

from edge import contract
from telemetry_shared import broker
from telemetry_shared.registry import DeviceNew, Registry
from tests.conftest import wait_for
from tests.helpers.ingest_workers import IngestWorkers
from tests.security.support import Recorder
from tests.security.test_broker_security import REFUSED, STOLEN

MESSAGES = 1200
PASSWORD = "share-theft-device-secret"


@pytest.mark.parametrize("workers", [2, 4])
def test_a_device_cannot_steal_from_the_ingest_group(workers, make_mosquitto, influx_db, shared_influxd,
                                                     tmp_path: Path) -> None:
    data = tmp_path / "city-data"
    hashed = broker.hash_password(PASSWORD)
    registry = Registry(data / "registry.sqlite3")
    for device_id in ("wtr-0001", "wtr-0666"):
        registry.add(DeviceNew(id=device_id, kind="water", district="bukit-bestari"), credential_hash=hashed)
    registry.close()
    mosquitto = make_mosquitto(users={"wtr-0001": hashed, "wtr-0666": hashed})
    replicas = IngestWorkers(workers, data, mosquitto.port, shared_influxd.url, influx_db.db, tmp_path).start()
    thieves = []
    try:
        wait_for(lambda: len(replicas.joined(influx_db)) == workers, timeout_s=30)
        time.sleep(0.5)  # the shared subscriptions are made right after connecting
        # The thief keeps a durable session and stays connected while the readings flow (MQTT 3.1.1; the
        # same refusals under MQTT 5 are in test_broker_security).
        thief = Recorder(mosquitto.port, "wtr-0666", PASSWORD, clean_session=False).start()
        assert thief.accepted
        thieves.append(thief)
        codes = {topic: thief.subscribe(topic) for topic in STOLEN}
        assert {topic: code for topic, code in codes.items() if code < REFUSED} == {}
        device = Recorder(mosquitto.port, "wtr-0001", PASSWORD).start()
        now_ms = int(time.time() * 1000)
        for seq in range(MESSAGES):
            raw = contract.encode_telemetry(seq, [(now_ms - (MESSAGES - seq) * 1000, {"flow_lps": 1.0 + seq})],
                                            "0.1.0")
            device.publish(contract.telemetry_topic("wtr-0001"), raw)  # waits for the PUBACK: acknowledged
        device.stop()

        def stored() -> int:
            rows = influx_db.rows('SELECT count("flow_lps") FROM "water"')
            return rows[0]["count"] if rows else 0

        wait_for(lambda: stored() >= MESSAGES, timeout_s=30)
        time.sleep(0.5)
        assert stored() == MESSAGES  # 0 acknowledged readings lost
        assert [m.topic for t in thieves for m in t.messages] == []
    finally:
        for thief in thieves:
            thief.stop()
        replicas.stop()
