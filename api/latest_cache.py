"""The latest reading of every device, computed at most once per TTL.

The control room, the CLI and dashboards poll "latest" constantly, and
every poll would otherwise cost InfluxDB one `ORDER BY time DESC LIMIT 1`
scan per kind (tens of milliseconds on a city-sized fleet). One snapshot of
all devices is shared by every caller for `ttl_s` (readings arrive in
ingest batches every few hundred milliseconds, devices report every few
seconds, so a one-second-old answer is as fresh as the data); concurrent
callers wait for the one query in flight rather than each sending their own.
"""

import threading
import time
from typing import Any

from api import queries
from edge import contract
from telemetry_shared.influx import InfluxQL


class LatestCache:
    def __init__(self, influx: InfluxQL, ttl_s: float = 1.0):
        self.influx = influx
        self.ttl_s = ttl_s
        self.lock = threading.Lock()
        self.snapshots: dict[int, tuple[float, list[dict[str, Any]]]] = {}  # max_age_ms -> (taken, rows)
        self.queries = 0

    def get(self, max_age_ms: int, kind: str | None = None, district: str | None = None,
            device: str | None = None) -> list[dict[str, Any]]:
        rows = self._snapshot(max_age_ms)
        return [r for r in rows if (kind is None or r["kind"] == kind)
                and (district is None or r["district"] == district) and (device is None or r["device"] == device)]

    def _snapshot(self, max_age_ms: int) -> list[dict[str, Any]]:
        with self.lock:  # one query in flight; the others wait for it and share it
            hit = self.snapshots.get(max_age_ms)
            if hit and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1]
            rows = queries.latest(self.influx, list(contract.KINDS), queries.now_ms() - max_age_ms)
            self.queries += 1
            if len(self.snapshots) > 16:
                self.snapshots.clear()  # odd max_age values must not pile up
            self.snapshots[max_age_ms] = (time.monotonic(), rows)
            return rows
