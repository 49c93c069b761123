"""`city device retire` with a real ingest worker listening: the device's session is
cut, its retained status is cleared on the broker (a later subscriber gets none), and
ingest is left with no dead letter and no extra status point."""

import time

from edge import contract
from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from tests.security.support import Recorder, Stack, make_settings, service_subscriber, wait_for


def test_retire_clears_the_retained_status_and_leaves_no_dead_letter(mosquitto, influx_db, tmp_path):
    stack = Stack(tmp_path, mosquitto)
    dead = DeadLetters(tmp_path / "dl.sqlite3")
    settings = make_settings(tmp_path, mosquitto, str(influx_db.http.base_url), influx_db.db, ingest_batch_ms=50,
                             registry_path=stack.settings.registry_file)
    worker = IngestWorker(settings, stack.registry, V1Writer(settings.influx_url, settings.influx_db), dead)
    worker.start()
    try:
        assert worker.subscribed.wait(10)
        password = stack.provisioner.add(DeviceNew(id="wtr-0007", kind="water", district="bukit-bestari")).password
        device = Recorder(mosquitto.port, "wtr-0007", password)
        device.client.will_set(contract.status_topic("wtr-0007"), contract.encode_status("offline"), 1, True)
        device.start()
        device.publish(contract.status_topic("wtr-0007"), contract.encode_status("online", "0.2.0"), retain=True)

        def statuses() -> int:
            rows = influx_db.rows('SELECT count("online") FROM "device_status"')
            return rows[0]["count"] if rows else 0

        wait_for(lambda: statuses() == 1, 10)
        _, cut_ms = stack.provisioner.retire("wtr-0007")
        assert cut_ms is not None
        wait_for(lambda: device.disconnected_at, 5)
        late = service_subscriber(mosquitto.port)
        assert late.subscribe(contract.status_topic("wtr-0007")) == 1
        time.sleep(1.0)  # ingest's batches go out every 50 ms
        assert late.messages == []  # nothing retained for the retired device
        assert dead.counts() == {}
        assert statuses() == 1
        late.stop()
    finally:
        worker.stop()
        stack.close()
