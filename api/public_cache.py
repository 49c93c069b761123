"""A small cache for the public routes: each answer computed at most once per
`ttl_s`, one computation at a time. While one caller refreshes an expired
value the others get the old one, so a crowd (or a slow InfluxDB) costs one
query and holds no worker threads."""

import threading
import time
from collections.abc import Callable
from typing import Any


class PublicCache:
    def __init__(self, ttl_s: float = 10.0):
        self.ttl_s = ttl_s
        self.lock = threading.Lock()  # guards the dicts, never held while computing
        self.values: dict[str, tuple[float, Any]] = {}  # name -> (when, value)
        self.refreshing: dict[str, threading.Lock] = {}

    def get(self, name: str, compute: Callable[[], Any]) -> Any:
        with self.lock:
            hit = self.values.get(name)
            if hit and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1]
            refresh = self.refreshing.setdefault(name, threading.Lock())
        if not refresh.acquire(blocking=hit is None):
            return hit[1]  # someone is refreshing it: the old value meanwhile
        try:
            with self.lock:
                latest = self.values.get(name)
            if latest and time.monotonic() - latest[0] < self.ttl_s:
                return latest[1]  # refreshed while we waited
            value = compute()
            with self.lock:
                self.values[name] = (time.monotonic(), value)
            return value
        finally:
            refresh.release()

    def forget(self, name: str) -> None:
        """Drop a value that is known to have changed (a ward updated): the next caller computes it."""
        with self.lock:
            self.values.pop(name, None)
