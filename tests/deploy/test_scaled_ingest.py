"""What `CITY_INGEST_WORKERS=3` / `--scale ingest=3` does in the deployment, with the
real processes and no engine: three replicas of the ingest command line from
docker-compose.yml (deploy/lease.py, then `python -m ingest`) on one data folder,
against a real Mosquitto and influxd. They take the identities ingest-0..2, split
the stream through the shared subscription, and together store every reading."""

import time
from pathlib import Path

from edge import contract
from telemetry_shared import broker
from telemetry_shared.registry import DeviceNew, Registry
from tests.deploy.broker_helpers import connect, stop, wait_for
from tests.helpers.ingest_workers import IngestWorkers

MESSAGES = 300
DEVICE_PASSWORD = "scaled-ingest-device-secret"


def test_three_replicas_share_the_stream_and_store_every_reading(mosquitto, influx_db, shared_influxd,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "city-data"  # the city-data volume all replicas mount
    registry = Registry(data / "registry.sqlite3")
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    registry.close()
    mosquitto.set_user("wtr-0001", broker.hash_password(DEVICE_PASSWORD))
    replicas = IngestWorkers(3, data, mosquitto.port, shared_influxd.url, influx_db.db, tmp_path).start()
    try:
        assert wait_for(lambda: replicas.joined(influx_db) == {"ingest-0", "ingest-1", "ingest-2"}, timeout_s=20), \
            replicas.tails()
        time.sleep(0.5)  # the shared subscriptions are made right after connecting
        device, rc = connect(mosquitto.port, "wtr-0001", DEVICE_PASSWORD)
        assert rc == 0
        now_ms = int(time.time() * 1000)
        for seq in range(MESSAGES):
            raw = contract.encode_telemetry(seq, [(now_ms - (MESSAGES - seq) * 1000, {"flow_lps": 10.0 + seq})],
                                            "0.1.0")
            device.publish(contract.telemetry_topic("wtr-0001"), raw, qos=1).wait_for_publish(5)
        stop(device)

        def stored() -> int:
            rows = influx_db.rows('SELECT count("flow_lps") FROM "water"')
            return rows[0]["count"] if rows else 0

        assert wait_for(lambda: stored() == MESSAGES, timeout_s=20), f"{stored()} of {MESSAGES} stored"

        def received() -> dict[str, int]:
            rows = influx_db.rows('SELECT last("received") FROM "ingest_stats" GROUP BY "worker"')
            return {row["worker"]: row["last"] for row in rows}

        assert wait_for(lambda: sum(received().values()) == MESSAGES, timeout_s=10), received()
        assert all(n > 0 for n in received().values()), f"one replica took nothing: {received()}"
    finally:
        replicas.stop()
