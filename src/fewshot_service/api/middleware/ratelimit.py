"""A token bucket per API key (or client address), in memory, per process.

Each bucket holds up to `burst` tokens and refills at `rate` per second; a request takes one. Per process
on purpose: several replicas each allow the rate, which an operator sizes for; a shared limiter would put
a network round trip on every select.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

MAX_BUCKETS = 100_000  # past this, full buckets (which are the same as no bucket) are dropped


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        """rate: tokens per second (0: no limit); burst: the bucket's size."""
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when they were counted)

    def take(self, name: str) -> float:
        """Take a token from name's bucket: 0.0 when granted, else the seconds until one is free."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(name, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                if len(self._buckets) > MAX_BUCKETS:
                    self._prune(now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [n for n, (tokens, then) in self._buckets.items() if tokens + (now - then) * self.rate >= self.burst]
        for name in full:
            del self._buckets[name]


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(seconds))
