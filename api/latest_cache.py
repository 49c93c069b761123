"""The latest reading of every device, computed at most once per TTL.

The control room, the CLI and dashboards poll "latest" constantly, and
every poll would otherwise cost InfluxDB one `ORDER BY time DESC LIMIT 1`
scan per kind (tens of milliseconds on a city-sized fleet). One snapshot of
all devices is shared by every caller for `ttl_s` (readings arrive in
ingest batches every few hundred milliseconds, devices report every few
seconds, so a one-second-old answer is as fresh as the data). One query at a
time: while it runs, callers get the previous snapshot (or, when there is
none, wait for it); a failure is remembered for the same TTL, so an InfluxDB
that is down is not asked again by every waiting caller in turn.
"""

import threading
import time
from typing import Any

from api import queries
from edge import contract
from telemetry_shared.influx import InfluxError, InfluxQL, InfluxUnavailable


class LatestCache:
    def __init__(self, influx: InfluxQL, ttl_s: float = 1.0):
        self.influx = influx
        self.ttl_s = ttl_s
        self.lock = threading.Lock()  # guards the dicts below, never held during a query
        self.snapshots: dict[int, tuple[float, list[dict[str, Any]]]] = {}  # max_age_ms -> (taken, rows)
        self.failures: dict[int, tuple[float, Exception]] = {}  # max_age_ms -> (when, error)
        self.refreshing: dict[int, threading.Lock] = {}
        self.queries = 0

    def get(self, max_age_ms: int, kind: str | None = None, district: str | None = None,
            device: str | None = None) -> list[dict[str, Any]]:
        rows = self._snapshot(max_age_ms)
        return [r for r in rows if (kind is None or r["kind"] == kind)
                and (district is None or r["district"] == district) and (device is None or r["device"] == device)]

    def _fresh(self, max_age_ms: int) -> tuple[list[dict[str, Any]] | None, tuple | None]:
        now = time.monotonic()
        hit = self.snapshots.get(max_age_ms)
        failed = self.failures.get(max_age_ms)
        if failed and now - failed[0] < self.ttl_s:
            # InfluxDB just failed: say so at once rather than queue up behind it (a new exception each time,
            # so tracebacks do not pile onto one shared object)
            raise InfluxUnavailable(str(failed[1]))
        return (hit[1] if hit and now - hit[0] < self.ttl_s else None), hit

    def _snapshot(self, max_age_ms: int) -> list[dict[str, Any]]:
        with self.lock:
            rows, stale = self._fresh(max_age_ms)
            if rows is not None:
                return rows
            if len(self.snapshots) > 16:
                self.snapshots.clear()  # odd max_age values must not pile up
                self.failures.clear()
            refresh = self.refreshing.setdefault(max_age_ms, threading.Lock())
        if not refresh.acquire(blocking=stale is None):
            return stale[1]  # another caller is refreshing: the previous snapshot meanwhile
        try:
            with self.lock:
                rows, _ = self._fresh(max_age_ms)  # refreshed (or failed) while we waited
            if rows is not None:
                return rows
            try:
                rows = queries.latest(self.influx, list(contract.KINDS), queries.now_ms() - max_age_ms)
            except InfluxError as exc:
                with self.lock:
                    self.failures[max_age_ms] = (time.monotonic(), exc)
                raise
            finally:
                self.queries += 1
            with self.lock:
                self.snapshots[max_age_ms] = (time.monotonic(), rows)
                self.failures.pop(max_age_ms, None)
            return rows
        finally:
            refresh.release()
