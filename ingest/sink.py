"""Where a decoded batch goes: InfluxDB, or the spool while InfluxDB is away.

`store(lines)` returns only once the lines are durable (InfluxDB accepted them,
or they are fsynced in the spool), so the caller may ack the MQTT messages.
Write errors are sorted by what they mean (see telemetry_shared.influx):
- 429, 5xx, timeouts, refused connections: retried with capped exponential
  backoff honouring Retry-After, then spooled and replayed in order later;
- 413: the batch is split in halves until it fits;
- 400/422 (a partial write: InfluxDB kept the good lines): the batch is
  bisected to find the lines it refuses; only those are dead-lettered, the
  good ones are written again, harmlessly (an identical point overwrites);
- any other 4xx (auth, missing database) is a setup fault, not the data's:
  treated like an outage, so nothing is dead-lettered by mistake.
"""

import gzip
import logging
import threading
import time
from collections.abc import Callable

from ingest.deadletter import DeadLetters
from ingest.metrics import Metrics
from ingest.spool import Spool, SpoolFull
from telemetry_shared.influx import InfluxRejected, InfluxTooLarge, InfluxUnavailable, LineWriter

log = logging.getLogger("ingest.sink")

PARTIAL_WRITE_STATUSES = (400, 422)
FIRST_BACKOFF_S = 0.1


class Sink:
    def __init__(self, writer: LineWriter, spool: Spool, dead_letters: DeadLetters, metrics: Metrics,
                 batch_points: int = 5000, retry_max_s: float = 10.0, spool_after_s: float = 5.0,
                 stopping: threading.Event | None = None, sleep: Callable[[float], None] = time.sleep):
        self.writer = writer
        self.spool = spool
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.batch_points = batch_points
        self.retry_max_s = retry_max_s
        self.spool_after_s = spool_after_s
        self.stopping = stopping or threading.Event()
        self.sleep = sleep
        self.replay_backoff_s = FIRST_BACKOFF_S
        self.next_replay = 0.0
        # Several storer threads share the sink: writes run side by side, the spool is touched by one at
        # a time (a replay holds it throughout, so a batch decides "behind the spool" only once it is done).
        self.spool_lock = threading.RLock()
        self._update_spool_gauges()

    # ------------------------------------------------------------ storing

    def store(self, lines: list[str]) -> None:
        """Make `lines` durable; raises SpoolFull when neither InfluxDB nor the spool takes them."""
        if not lines:
            return
        with self.spool_lock:
            if len(self.spool):  # keep the order: nothing overtakes what is already spooled
                self._spool(lines)
                return
        deadline = time.monotonic() + self.spool_after_s
        for start in range(0, len(lines), self.batch_points):
            chunk = lines[start:start + self.batch_points]
            try:
                self._write_retrying(chunk, deadline)
            except InfluxUnavailable as exc:
                log.warning("InfluxDB unavailable, spooling: %s", exc)
                self._spool(lines[start:])
                return

    def _spool(self, lines: list[str]) -> None:
        with self.spool_lock:
            try:
                self.spool.append(lines)
            except SpoolFull:
                self.metrics.inc("spool_full")
                raise
            finally:
                self._update_spool_gauges()
        self.metrics.inc("spooled", len(lines))

    def _write_retrying(self, lines: list[str], deadline: float) -> None:
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                self._write_splitting(lines)
                return
            except InfluxUnavailable as exc:
                self.metrics.inc("write_retries")
                wait = min(exc.retry_after_s if exc.retry_after_s is not None else backoff, self.retry_max_s)
                backoff = min(backoff * 2, self.retry_max_s)
                if self.stopping.is_set() or time.monotonic() + wait > deadline:
                    raise
                self.sleep(wait)

    def _write_splitting(self, lines: list[str]) -> None:
        """One write; 413 splits, a partial write bisects down to the refused lines."""
        started = time.monotonic()
        try:
            self.writer.write(lines)
        except InfluxTooLarge as exc:
            self._observe(started)
            if len(lines) == 1:
                self._dead_letter(lines, "influx_too_large", str(exc))
                return
            self.metrics.inc("write_splits")
            self._halves(lines)
            return
        except InfluxRejected as exc:
            self._observe(started)
            if exc.status not in PARTIAL_WRITE_STATUSES:
                raise InfluxUnavailable(f"InfluxDB refused the request (check the setup): {exc}", exc.status) from exc
            if len(lines) == 1:
                self._dead_letter(lines, "influx_rejected", str(exc))
                return
            self.metrics.inc("partial_writes")
            self._halves(lines)
            return
        except InfluxUnavailable:
            self._observe(started)
            raise
        self._observe(started)
        self.metrics.inc("points_written", len(lines))

    def _halves(self, lines: list[str]) -> None:
        half = len(lines) // 2
        self._write_splitting(lines[:half])
        self._write_splitting(lines[half:])

    def _observe(self, started: float) -> None:
        self.metrics.observe_write(time.monotonic() - started)

    def _dead_letter(self, lines: list[str], reason: str, detail: str) -> None:
        self.metrics.inc(f"rejected_{reason}", len(lines))
        self.dead_letters.add_many([(reason, _device_of_line(line), "", detail[:500], line.encode())
                                    for line in lines])

    # ------------------------------------------------------------ replay

    def replay(self, budget_s: float = 1.0) -> int:
        """Write spooled batches, oldest first, for up to `budget_s`; returns points replayed."""
        if not len(self.spool) or time.monotonic() < self.next_replay:
            return 0
        if not self.spool_lock.acquire(blocking=False):
            return 0  # another storer is replaying or spooling
        try:
            return self._replay(budget_s)
        finally:
            self.spool_lock.release()

    def _replay(self, budget_s: float) -> int:
        now = time.monotonic()
        replayed = 0
        deadline = now + budget_s
        while len(self.spool) and time.monotonic() < deadline and not self.stopping.is_set():
            try:
                oldest = self.spool.oldest()
            except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
                self._quarantine_spool_file(exc)
                continue
            path, lines = oldest
            try:
                for start in range(0, len(lines), self.batch_points):
                    self._write_splitting(lines[start:start + self.batch_points])
            except InfluxUnavailable as exc:
                self.metrics.inc("write_retries")
                wait = min(exc.retry_after_s if exc.retry_after_s is not None else self.replay_backoff_s,
                           self.retry_max_s)
                self.replay_backoff_s = min(self.replay_backoff_s * 2, self.retry_max_s)
                self.next_replay = time.monotonic() + wait
                break
            self.spool.remove(path)
            self.replay_backoff_s = FIRST_BACKOFF_S
            replayed += len(lines)
            self.metrics.inc("replayed", len(lines))
        self._update_spool_gauges()
        return replayed

    def _quarantine_spool_file(self, exc: Exception) -> None:
        path = self.spool.files[0]
        raw = path.read_bytes() if path.exists() else b""
        self.dead_letters.add_many([("spool_corrupt", "", "", f"{path.name}: {exc!r}"[:500], raw)])
        self.metrics.inc("rejected_spool_corrupt")
        self.spool.remove(path)

    def _update_spool_gauges(self) -> None:
        self.metrics.set("spool_files", len(self.spool))
        self.metrics.set("spool_bytes", self.spool.bytes)


def _device_of_line(line: str) -> str:
    marker = ",device="
    start = line.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    end = start
    while end < len(line) and line[end] not in ", ":
        end += 1
    return line[start:end][:64]
