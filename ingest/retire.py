"""Scaling down without loss: drain and end a worker identity's session.

Mosquitto keeps an absent member of a shared subscription in its round-robin:
a stopped worker's durable session goes on collecting its share of the stream
for as long as the session lives. `retire(settings, n)` connects as that
worker (svc-ingest-N), stores and acks what the session held, replays the
worker's spool, and leaves with a session expiry of 0, so the broker forgets
the identity and routes everything to the remaining workers.

Only a stopped worker is retired, checked twice before anything changes:
- on this machine the worker holds its spool folder (an flock, see
  ingest/spool.py); retire takes the same lock for as long as it runs, so the
  worker cannot start meanwhile either;
- a worker elsewhere (another host, another volume) is seen at the broker:
  connecting as svc-ingest-N takes its session over, and a running worker
  reconnects within its backoff (at most 1 s) and takes it back. Retire waits
  GRACE_S for that before it drops any subscription, and gives way if it
  happens (then or later): the worker keeps its session, nothing is lost.
"""

import logging
import os
import time
from dataclasses import dataclass

from ingest.deadletter import DeadLetters
from ingest.mqtt import MqttClient, MqttHandler, MqttSubscriber
from ingest.spool import SpoolBusy, hold_spool
from ingest.worker import SESSION_EXPIRY_S, ClientFactory, IngestWorker
from telemetry_shared.broker import service_user
from telemetry_shared.influx import make_writer
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

log = logging.getLogger("ingest.retire")

GRACE_S = 3.0  # > the workers' longest reconnect backoff (1 s), with room for a loaded machine


class RetireError(Exception):
    pass


class WorkerRunning(RetireError):
    """The worker to retire is still running: nothing was changed."""


@dataclass
class Retired:
    worker_id: str
    messages: int  # messages the session still held
    points: int  # points they (and the spool) wrote
    dead_letters: int


def giving_way_client(settings: Settings, handler: MqttHandler) -> MqttClient:
    """The worker's session, but handed back (never fought over) when the worker connects."""
    return MqttSubscriber(settings.mqtt_host, settings.mqtt_port, settings.mqtt_user, settings.mqtt_user,
                          settings.mqtt_password, handler, settings.ingest_receive_maximum, SESSION_EXPIRY_S,
                          give_way=True)


def retire(settings: Settings, instance: int, quiet_s: float = 2.0, timeout_s: float = 600.0,
           client_factory: ClientFactory = giving_way_client, grace_s: float = GRACE_S) -> Retired:
    """Drain worker `instance` (its broker session and its spool), then end its session.
    Raises WorkerRunning (nothing changed) when the worker still runs, RetireError when the
    broker or InfluxDB did not answer (the session stays: nothing is lost)."""
    s = settings.model_copy(update={"mqtt_user": service_user("ingest", instance),
                                    "ingest_worker_id": f"ingest-{instance}", "ingest_metrics_port": 0})
    try:
        lock = hold_spool(s.spool_dir)
    except SpoolBusy as exc:
        raise WorkerRunning(f"{s.ingest_worker_id} is still running ({exc}): stop it first; nothing was changed"
                            ) from None
    try:
        return _retire(s, quiet_s, timeout_s, client_factory, grace_s)
    finally:
        os.close(lock)


def _retire(s: Settings, quiet_s: float, timeout_s: float, client_factory: ClientFactory,
            grace_s: float) -> Retired:
    worker = IngestWorker(s, Registry(s.registry_file), make_writer(s), DeadLetters(s.deadletter_file),
                          client_factory=client_factory, subscribe=False)
    worker.start()
    deadline = time.monotonic() + timeout_s
    running = WorkerRunning(f"{s.ingest_worker_id} is still running: it took its broker session ({s.mqtt_user}) "
                            "back; stop it first (nothing was lost)")
    try:
        if not worker.subscribed.wait(min(30.0, timeout_s)):
            raise RetireError(f"could not connect to the broker as {s.mqtt_user}")
        _check_session(worker, grace_s, running)  # a running worker takes its session back within its backoff
        worker.drop_subscriptions()
        while not _drained(worker, quiet_s):
            _check_session(worker, 0, running)
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


def _check_session(worker: IngestWorker, wait_s: float, running: WorkerRunning) -> None:
    """Raise `running` if the worker took its session back (waiting up to wait_s for that), or
    RetireError if the connection was lost otherwise. The client never reconnects (give_way)."""
    taken = getattr(worker.client, "taken_over", None)
    if taken is None:  # a client without give_way (the unit tests' fake)
        return
    if taken.wait(wait_s):
        raise running
    if worker.client.stopping.is_set():
        if taken.is_set():  # set just before `stopping`
            raise running
        raise RetireError(f"lost the broker connection as {worker.settings.mqtt_user}; nothing was lost, run it again")


def _drained(worker: IngestWorker, quiet_s: float) -> bool:
    """Nothing arrived for quiet_s, nothing is held, the spool is empty."""
    return (time.monotonic() - worker.last_message >= quiet_s and worker.idle()
            and not len(worker.sink.spool))
