"""Run one ingest worker: `python -m ingest` (settings from CITY_* variables).

SIGTERM or SIGINT drains: what the worker holds is stored and acked first.
"""

import logging

from ingest.deadletter import DeadLetters
from ingest.metrics import MetricsServer
from ingest.spool import SpoolBusy, hold_spool
from ingest.worker import IngestWorker
from telemetry_shared.city import check_profile_in_child, use_light_profiles
from telemetry_shared.influx import make_writer
from telemetry_shared.logs import setup_logging
from telemetry_shared.registry import Registry
from telemetry_shared.settings import get_settings
from telemetry_shared.stopsignal import StopRequest

log = logging.getLogger("ingest")


def main() -> None:
    use_light_profiles()  # the worker never draws a map: ~25 MB less resident (telemetry_shared/city.py)
    try:
        settings = get_settings()
        check_profile_in_child(settings.profile)  # the whole profile still checked before the worker starts
        registry = Registry(settings.registry_file)
        registry.check_districts(settings.city)  # a device in a district the profile lacks: refuse to start
    except ValueError as exc:  # pydantic's ValidationError names each key that is wrong, a profile its line
        raise SystemExit(f"ingest: bad configuration (CITY_* variables or city profile): {exc}") from None
    setup_logging(settings)  # HTTP clients at WARNING (a line per write is noise), secrets masked
    try:
        hold_spool(settings.spool_dir)  # held until the process ends: `city ingest retire-worker` checks it
    except SpoolBusy as exc:
        raise SystemExit(f"ingest: worker {settings.ingest_worker_id} already runs or is being retired: {exc} "
                         "(each worker needs its own CITY_INGEST_WORKER_ID and CITY_MQTT_USER)") from None
    worker = IngestWorker(settings, registry, make_writer(settings),
                          DeadLetters(settings.deadletter_file))
    server = None
    if settings.ingest_metrics_port:
        try:
            server = MetricsServer(worker.metrics, settings.ingest_metrics_port).start()
        except OSError as exc:
            raise SystemExit(f"ingest: cannot serve metrics on port {settings.ingest_metrics_port} "
                             f"(CITY_INGEST_METRICS_PORT): {exc}") from exc
    stop = StopRequest()
    worker.start()
    log.info("ingest worker %s started (metrics on port %s)", settings.ingest_worker_id,
             settings.ingest_metrics_port or "off")
    stop.wait()  # SIGTERM (docker stop, city up) or SIGINT, whichever thread the kernel handed it to
    log.info("draining")
    worker.stop()
    if server:
        server.stop()
    log.info("stopped")


if __name__ == "__main__":
    main()
