"""Replicas of the ingest command line of docker-compose.yml (deploy/lease.py, then `python -m ingest`) on one
data folder, against a real Mosquitto and influxd, as `--scale ingest=N` runs them."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from telemetry_shared.influx import InfluxQL
from tests.conftest import ROOT, SERVICE_PASSWORD


def compose_ingest_command() -> list[str]:
    """The ingest service's command in docker-compose.yml (`python -m deploy.lease ingest -- python -m ingest`)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["ingest"]["command"]


class IngestWorkers:
    """`n` ingest replicas with their logs in `logs` (worker-<i>.log); they take the identities ingest-0.. from
    the lease in `data` (the city-data volume all replicas mount)."""

    def __init__(self, n: int, data: Path, mqtt_port: int, influx_url: str, db: str, logs: Path):
        self.logs = [logs / f"worker-{i}.log" for i in range(n)]
        self.env = os.environ | {
            "CITY_ENVIRONMENT": "test", "CITY_DATA_DIR": str(data), "CITY_MQTT_HOST": "127.0.0.1",
            "CITY_MQTT_PORT": str(mqtt_port), "CITY_MQTT_PASSWORD": SERVICE_PASSWORD, "CITY_INFLUX_URL": influx_url,
            "CITY_INFLUX_DB": db, "CITY_INGEST_WORKERS": str(n),
            "CITY_INGEST_METRICS_PORT": "0",  # replicas share this host's ports here, unlike containers
            "CITY_INGEST_STATS_INTERVAL_S": "0.5", "CITY_INGEST_BATCH_MS": "50"}
        self.procs: list[subprocess.Popen] = []

    def start(self) -> "IngestWorkers":
        command = compose_ingest_command()
        assert command[:3] == ["python", "-m", "deploy.lease"], command
        for path in self.logs:
            with open(path, "w") as log:  # the child keeps its own copy of the descriptor
                self.procs.append(subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, env=self.env,
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        return self

    @staticmethod
    def joined(influx: InfluxQL) -> set[str]:
        """The workers that have written their counters (`writes` is in every ingest_stats point, from the start)."""
        return {row["worker"] for row in influx.rows('SELECT last("writes") FROM "ingest_stats" GROUP BY "worker"')}

    def tails(self, chars: int = 600) -> str:
        return "\n".join(path.read_text()[-chars:] for path in self.logs)

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM to every replica (each drains and acks what it stored), SIGKILL to one that hangs."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
