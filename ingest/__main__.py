"""Run one ingest worker: `python -m ingest` (settings from CITY_* variables)."""

import logging
import signal
import threading

from ingest.deadletter import DeadLetters
from ingest.worker import IngestWorker
from telemetry_shared.influx import make_writer
from telemetry_shared.registry import Registry
from telemetry_shared.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    worker = IngestWorker(settings, Registry(settings.registry_file), make_writer(settings),
                          DeadLetters(settings.deadletter_file))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    worker.start()
    done.wait()
    worker.stop()


if __name__ == "__main__":
    main()
