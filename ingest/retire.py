"""Scaling down without loss: drain and end a worker identity's session.

Mosquitto keeps an absent member of a shared subscription in its round-robin:
a stopped worker's durable session goes on collecting its share of the stream
for as long as the session lives. `retire(settings, n)` connects as that
worker (svc-ingest-N, after the worker itself has stopped), takes no new
subscription and drops the old ones, stores and acks what the session held,
replays the worker's spool, and leaves with a session expiry of 0, so the
broker forgets the identity and routes everything to the remaining workers.
"""

import logging
import time
from dataclasses import dataclass

from ingest.deadletter import DeadLetters
from ingest.worker import ClientFactory, IngestWorker, broker_client
from telemetry_shared.broker import service_user
from telemetry_shared.influx import make_writer
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

log = logging.getLogger("ingest.retire")


class RetireError(Exception):
    pass


@dataclass
class Retired:
    worker_id: str
    messages: int  # messages the session still held
    points: int  # points they (and the spool) wrote
    dead_letters: int


def retire(settings: Settings, instance: int, quiet_s: float = 2.0, timeout_s: float = 600.0,
           client_factory: ClientFactory = broker_client) -> Retired:
    """Drain worker `instance` (its broker session and its spool), then end its session."""
    s = settings.model_copy(update={"mqtt_user": service_user("ingest", instance),
                                    "ingest_worker_id": f"ingest-{instance}", "ingest_metrics_port": 0})
    worker = IngestWorker(s, Registry(s.registry_file), make_writer(s), DeadLetters(s.deadletter_file),
                          client_factory=client_factory, subscribe=False)
    worker.start()
    deadline = time.monotonic() + timeout_s
    try:
        if not worker.subscribed.wait(min(30.0, timeout_s)):
            raise RetireError(f"could not connect to the broker as {s.mqtt_user}")
        while not _drained(worker, quiet_s):
            if time.monotonic() > deadline:
                raise RetireError(f"{s.mqtt_user} still busy after {timeout_s:.0f} s; nothing was lost, run it again")
            worker.sink.replay()
            time.sleep(0.1)
    except BaseException:
        worker.stop()  # the session stays: what it still holds is not lost
        raise
    worker.stop(session_expiry_s=0)
    counters = worker.counters
    return Retired(s.ingest_worker_id, counters["received"], counters["points_written"],
                   sum(v for k, v in counters.items() if k.startswith("rejected_")))


def _drained(worker: IngestWorker, quiet_s: float) -> bool:
    """Nothing arrived for quiet_s, nothing is held, the spool is empty."""
    return (time.monotonic() - worker.last_message >= quiet_s and worker.idle()
            and not len(worker.sink.spool))
