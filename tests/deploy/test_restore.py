"""Issue 25: after a restore, devices must log in at once. A device added in one
city, the SQLite backup (deploy/backup.py) restored into an empty deployment
(a fresh broker-auth volume, a fresh InfluxDB): broker-init rebuilds the broker's
device entries from the restored registry, the deployed Mosquitto config admits
the device, and its next reading is stored by a real ingest worker."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy import backup, broker_files
from edge import contract
from telemetry_shared.influx import InfluxQL
from telemetry_shared.registry import DeviceNew
from tests.conftest import ROOT, wait_for
from tests.deploy.broker_helpers import DeployedMosquitto, make_certificate
from tests.deploy.test_broker import SERVICE_ENV
from tests.security.support import Recorder, Stack


def test_a_restored_city_admits_its_devices_and_stores_their_next_reading(make_mosquitto, make_influxd,
                                                                          tmp_path: Path, capsys) -> None:
    old = tmp_path / "old-city"
    old.mkdir()
    stack = Stack(old, make_mosquitto())
    password = stack.provisioner.add(DeviceNew(id="wtr-0042", kind="water", district="bukit-bestari")).password
    stack.close()
    assert backup.main(["--data-dir", str(old), "--dest", str(tmp_path / "backups")]) == 0
    [saved] = (tmp_path / "backups").iterdir()

    # The empty deployment: the backup's databases in a new data volume, nothing else.
    data = tmp_path / "new-city"
    data.mkdir()
    for database in saved.glob("*.sqlite3"):
        shutil.copyfile(database, data / database.name)
    deployment = tmp_path / "deploy"
    auth = deployment / "mosquitto" / "auth"
    auth.mkdir(parents=True)
    certs = tmp_path / "certs"
    make_certificate(certs)
    os.environ.update(SERVICE_ENV)
    try:
        assert broker_files.main(["--init", "--auth-dir", str(auth), "--certs-dir", str(certs),
                                  "--registry", str(data / "registry.sqlite3"),
                                  "--ca-out", str(deployment / "city-ca")]) == 0
    finally:
        for variable in SERVICE_ENV:
            os.environ.pop(variable)
    assert "1 devices from the registry" in capsys.readouterr().out
    mosquitto = DeployedMosquitto(deployment).start()
    influxd = make_influxd()
    influx = InfluxQL(influxd.url, "city")
    influx.create_database()
    env = os.environ | {
        "CITY_ENVIRONMENT": "test", "CITY_DATA_DIR": str(data), "CITY_MQTT_PORT": str(mosquitto.port),
        "CITY_MQTT_USER": "svc-ingest-0", "CITY_MQTT_PASSWORD": SERVICE_ENV["INGEST_MQTT_PASSWORD"],
        "CITY_INFLUX_URL": influxd.url, "CITY_INGEST_METRICS_PORT": "0", "CITY_INGEST_BATCH_MS": "50",
        "CITY_INGEST_STATS_INTERVAL_S": "0.5"}
    with open(tmp_path / "ingest.log", "w") as log:
        ingest = subprocess.Popen([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: influx.rows('SELECT last("writes") FROM "ingest_stats"'), timeout_s=30)  # it is up
        time.sleep(0.5)  # and subscribed right after connecting
        device = Recorder(mosquitto.tls_port, "wtr-0042", password, ca=certs / "ca.crt").start()  # TLS only
        assert device.accepted, f"the restored device was refused: {device.connack}"
        raw = contract.encode_telemetry(0, [(int(time.time() * 1000), {"flow_lps": 12.5})], "0.1.0")
        device.publish(contract.telemetry_topic("wtr-0042"), raw)
        device.stop()

        def stored() -> list[dict]:
            return influx.rows('SELECT "flow_lps" FROM "water" WHERE "device" = \'wtr-0042\'')

        rows = wait_for(stored, timeout_s=20)
        assert [row["flow_lps"] for row in rows] == [12.5], (tmp_path / "ingest.log").read_text()[-2000:]
    finally:
        os.kill(ingest.pid, signal.SIGTERM)
        ingest.wait(30)
        mosquitto.stop()
