"""A bounded share of the worker threads for requests that use the bank.

Routes run on one thread pool. Without a bound, requests waiting on a hung bank (writes, lists, stats) take
every thread, and /v1/select, which needs no bank, starves behind them. Here such requests hold one of a
fixed number of slots for their whole life, wait a bounded time for one, and are refused (503
bank_unavailable) when none frees up, or at once while the bank is known to be down; selects, probes and
metrics never take a slot, and the thread pool is sized to keep room for them.
"""

from __future__ import annotations

import asyncio

import anyio.to_thread
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from ...bank.guard import BankHealth
from ..errors import error_body
from .limits import _send_json

# Paths that need no bank on their way (select reads memory; the probes, metrics and docs too).
FREE = ("/v1/select", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json", "/ui")
# Worker threads kept for those paths beyond the bank's slots.
FREE_THREADS = 24


def reserve_threads(bank_slots: int) -> None:
    """Grow the route thread pool so the bank's slots cannot take all of it (call on the event loop)."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(int(limiter.total_tokens), bank_slots + FREE_THREADS)


class BankSlots:
    def __init__(
        self, app: ASGIApp, slots: int, wait_seconds: float, health: BankHealth, refused: Counter | None = None
    ) -> None:
        self.app = app
        self.slots = slots
        self.wait_seconds = wait_seconds
        self.health = health
        self.refused = refused
        self._free = asyncio.Semaphore(slots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/" or path.startswith(FREE):
            await self.app(scope, receive, send)
            return
        if self.health.refusing():  # no thread, no embedding, no wait for a bank known to be down
            await self._refuse(scope, send, self.health.refuse().message, self.health.retry_after)
            return
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        while True:
            try:
                # In steps, so waiters are let go as soon as the bank is known to be down.
                await asyncio.wait_for(self._free.acquire(), 0.1)
                break
            except TimeoutError:
                if self.health.refusing():
                    await self._refuse(scope, send, self.health.refuse().message, self.health.retry_after)
                    return
                if asyncio.get_running_loop().time() >= deadline:
                    message = f"{self.slots} requests are waiting on the bank already; retry shortly"
                    await self._refuse(scope, send, message, 1)
                    return
        try:
            await self.app(scope, receive, send)
        finally:
            self._free.release()

    async def _refuse(self, scope: Scope, send: Send, message: str, retry_after: int) -> None:
        if self.refused is not None and scope.get("method") not in ("GET", "HEAD"):
            self.refused.inc()
        body = error_body("bank_unavailable", message)
        await _send_json(send, 503, body, [(b"retry-after", str(retry_after).encode())])
