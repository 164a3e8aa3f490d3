"""A token bucket per API key and kind of route, in memory, per process.

Each bucket holds up to `burst` tokens and refills at `rate` per second; a request takes one. A key may
carry its own rate: its bucket then holds one second of that rate. Per process on purpose: several
replicas each allow the rate, which an operator sizes for; a shared limiter would put a network round trip
on every select.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal

MAX_BUCKETS = 100_000  # past this, full buckets (which are the same as no bucket) are dropped

RouteKind = Literal["select", "metrics", "admin", "api"]


def route_kind(path: str) -> RouteKind:
    """Which bucket of a key a request draws on: a scrape, an operator's call or a curator's work never
    empties the bucket the application's selects need, nor the other way round."""
    if path == "/v1/select":
        return "select"
    if path == "/metrics":
        return "metrics"
    if path == "/v1/admin" or path.startswith("/v1/admin/"):
        return "admin"
    return "api"


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        """rate: the default tokens per second (0: no limit); burst: the default bucket's size."""
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # name -> (tokens, when they were counted, rate, burst)
        self._buckets: dict[str, tuple[float, float, float, float]] = {}

    def take(self, name: str, rate: float | None = None) -> float:
        """Take a token from name's bucket: 0.0 when granted, else the seconds until one is free.
        rate: the bucket's own rate (0: no limit), None: the default."""
        burst = float(self.burst) if rate is None else max(1.0, float(math.ceil(rate)))
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, then, _, _ = self._buckets.get(name, (burst, now, rate, burst))
            tokens = min(burst, tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now, rate, burst)
                if len(self._buckets) > MAX_BUCKETS:
                    self._prune(now)
                return 0.0
            self._buckets[name] = (tokens, now, rate, burst)
            return (1.0 - tokens) / rate

    def _prune(self, now: float) -> None:
        full = [n for n, (tokens, then, rate, burst) in self._buckets.items() if tokens + (now - then) * rate >= burst]
        for name in full:
            del self._buckets[name]


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(seconds))
