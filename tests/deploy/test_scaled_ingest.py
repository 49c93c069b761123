"""What `CITY_INGEST_WORKERS=3` / `--scale ingest=3` does in the deployment, with the
real processes and no engine: three replicas of the ingest command line from
docker-compose.yml (deploy/lease.py, then `python -m ingest`) on one data folder,
against a real Mosquitto and influxd. They take the identities ingest-0..2, split
the stream through the shared subscription, and together store every reading."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from edge import contract
from telemetry_shared import broker
from telemetry_shared.registry import DeviceNew, Registry
from tests.conftest import SERVICE_PASSWORD
from tests.deploy.broker_helpers import connect, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 300
DEVICE_PASSWORD = "scaled-ingest-device-secret"


def compose_ingest_command() -> list[str]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["ingest"]["command"]


def test_three_replicas_share_the_stream_and_store_every_reading(mosquitto, influx_db, shared_influxd,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "city-data"  # the city-data volume all replicas mount
    registry = Registry(data / "registry.sqlite3")
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    registry.close()
    mosquitto.set_user("wtr-0001", broker.hash_password(DEVICE_PASSWORD))
    env = os.environ | {
        "CITY_ENVIRONMENT": "test", "CITY_DATA_DIR": str(data), "CITY_MQTT_HOST": "127.0.0.1",
        "CITY_MQTT_PORT": str(mosquitto.port), "CITY_MQTT_PASSWORD": SERVICE_PASSWORD,
        "CITY_INFLUX_URL": shared_influxd.url, "CITY_INFLUX_DB": influx_db.db, "CITY_INGEST_WORKERS": "3",
        "CITY_INGEST_METRICS_PORT": "0",  # replicas share this host's ports here, unlike containers
        "CITY_INGEST_STATS_INTERVAL_S": "0.5", "CITY_INGEST_BATCH_MS": "50",
    }
    command = compose_ingest_command()
    assert command[:3] == ["python", "-m", "deploy.lease"]
    logs = [open(tmp_path / f"replica-{n}.log", "w") for n in range(3)]  # noqa: SIM115 - closed below
    replicas = [subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, env=env, stdout=log, stderr=log,
                                 start_new_session=True) for log in logs]

    def tails() -> str:
        return "\n".join((tmp_path / f"replica-{n}.log").read_text()[-600:] for n in range(3))

    try:
        def workers() -> set[str]:  # `writes` is in every ingest_stats point, from the start
            rows = influx_db.rows('SELECT last("writes") FROM "ingest_stats" GROUP BY "worker"')
            return {row["worker"] for row in rows}

        assert wait_for(lambda: workers() == {"ingest-0", "ingest-1", "ingest-2"}, timeout_s=20), tails()
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
        for proc in replicas:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in replicas:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for log in logs:
            log.close()
