"""Waiting for SIGTERM or SIGINT in a service's main thread (`python -m analytics`, `python -m ingest`).

The kernel hands a signal sent to the process to any one of its threads that does not block it, most often
the main one, but not always (for example while the main thread has another signal pending). Python runs its
signal handlers in the main thread only, when that thread next runs Python code. A main thread asleep in
`threading.Event.wait()` without a timeout is not woken by a signal another thread received, so it slept on:
`docker stop` (or `city up`'s supervisor) waited, then killed the process without its last state save or drain.
Here the main thread wakes every `poll_s` seconds, and the handlers only append to a list (no lock: an
`Event.set` in a handler could deadlock with an `Event.wait` the handler interrupted).
"""

import signal
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Handlers for SIGTERM and SIGINT that only record the signal (made before the service starts, so that no
    signal finds the default action, which ends the process unsaved); wait() returns the first one's number."""

    def __init__(self) -> None:
        self.received: list[int] = []
        for number in STOP_SIGNALS:
            signal.signal(number, lambda signum, _frame: self.received.append(signum))

    def wait(self, poll_s: float = 0.2) -> int:
        while not self.received:
            time.sleep(poll_s)
        return self.received[0]
