"""Retry rules shared by the sync and async clients: what is retried, and how long to wait."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from .errors import FewshotConnectionError

RETRIED_STATUSES = frozenset({429, 503})
# Read-only calls, safe to send again when the connection failed midway (the server may have done the work).
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_ONLY_POSTS = frozenset({"/v1/select"})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most `max_attempts` sends within `max_total_seconds`, waiting the server's
    Retry-After when it gives one, else an exponential backoff from `backoff_base` capped at `backoff_cap`,
    with jitter so many clients do not retry in step."""

    max_attempts: int = 4
    max_total_seconds: float = 30.0
    backoff_base: float = 0.25
    backoff_cap: float = 8.0

    def backoff(self, attempt: int) -> float:
        """The wait before retry number `attempt` (1-based) when the server did not say."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


NO_RETRIES = RetryPolicy(max_attempts=1)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def may_resend_after_transport_error(method: str, path: str) -> bool:
    return method.upper() in _IDEMPOTENT_METHODS or (method.upper() == "POST" and path in _READ_ONLY_POSTS)


class Attempts:
    """Counts the tries of one call and decides the wait before the next; None means give up."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.made = 0
        self.deadline = time.monotonic() + policy.max_total_seconds

    def wait_after_status(self, response: httpx.Response) -> float | None:
        if response.status_code not in RETRIED_STATUSES:
            return None
        return self._fits(retry_after_seconds(response))

    def wait_after_transport_error(self, method: str, path: str) -> float | None:
        return self._fits(None) if may_resend_after_transport_error(method, path) else None

    def _fits(self, asked: float | None) -> float | None:
        if self.made >= self.policy.max_attempts:
            return None
        wait = asked if asked is not None else self.policy.backoff(self.made)
        # A wait that would overrun the time budget is not worth starting: the caller gets the error now.
        return wait if time.monotonic() + wait <= self.deadline else None


def connection_error(exc: httpx.RequestError) -> FewshotConnectionError:
    """The documented error for a request httpx could not complete (refused, timed out, cut off)."""
    return FewshotConnectionError(
        0, "connection_error", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    )


@contextmanager
def reading_stream() -> Iterator[None]:
    """Around reading a streamed answer (export): a timeout or disconnect midway is not retried (lines were
    already handed out) but raised as the documented FewshotConnectionError, not as httpx's own exception.
    A plain `with` serves the async client too: the errors of the awaits inside pass through it."""
    try:
        yield
    except httpx.RequestError as exc:
        raise connection_error(exc) from exc
