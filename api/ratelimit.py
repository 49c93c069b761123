"""A token bucket per client address for the public routes."""

import math
import threading
import time

from fastapi import HTTPException, Request

MAX_CLIENTS = 100_000  # forget the oldest buckets past this, so memory stays bounded


class RateLimiter:
    def __init__(self, per_minute: int):
        self.rate_per_s = per_minute / 60.0
        self.burst = float(per_minute)
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last time)
        self.lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            if len(self.buckets) >= MAX_CLIENTS and client not in self.buckets:
                self.buckets.pop(next(iter(self.buckets)))
            if tokens < 1:
                self.buckets[client] = (tokens, now)
                return (1 - tokens) / self.rate_per_s
            self.buckets[client] = (tokens - 1, now)
            return 0.0


def _limit(limiter: RateLimiter, request: Request) -> None:
    wait_s = limiter.allow(request.client.host if request.client else "unknown")
    if wait_s:
        wait_whole_s = max(1, math.ceil(wait_s))  # never "try again in 0 s"
        raise HTTPException(429, f"too many requests; try again in {wait_whole_s} s",
                            headers={"Retry-After": str(wait_whole_s)})


def public_rate_limit(request: Request) -> None:
    """A dependency: 429 with Retry-After when a client asks too often."""
    _limit(request.app.state.public_limiter, request)


async def opendata_rate_limit(request: Request) -> None:
    """The same for the open-data catalogue, CKAN actions and downloads, from a bucket of their own: a
    harvester walks package_list, every package_show and every download, far past the public limit.
    Async: the bucket is a few microseconds under a lock, not worth a worker-thread hop a request."""
    _limit(request.app.state.opendata_limiter, request)
