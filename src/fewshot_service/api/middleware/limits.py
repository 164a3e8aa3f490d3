"""Limits every request meets before a route runs: its body size, no NUL character in its URL or JSON body,
and how many are handled at once.

FastAPI's own max_body_size answers an oversized Content-Length with a plain-text 413; the contract
wants its JSON error body everywhere, hence this small middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...models import nul_path, nul_refusal
from ..errors import error_body, is_json_media_type


class BodySizeLimit:
    """Answer 413 for bodies over max_bytes, whether announced by Content-Length or chunked."""

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._reject(send, limit)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI passes HTTPException raised while reading the body on to the error
                    # handlers (any other exception would become a 400).
                    raise HTTPException(413, f"the request body exceeds {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)

    async def _reject(self, send: Send, limit: int) -> None:
        body = error_body("payload_too_large", f"the request body exceeds {limit} bytes", "body")
        await _send_json(send, 413, body, [])


class NoNulCharacters:
    """Answer 422 for a NUL character in the path, a query parameter or a JSON body, naming where it was.

    PostgreSQL refuses NUL in any text it is sent, so a lookup holding one would fail inside the bank and a
    write would be refused there without naming its field, while SQLite would store it; no id, name, prompt
    or example needs one. Import uploads are checked line by line (bank/importer.py). Added inside
    BodySizeLimit, so the body it holds for the check is never over the size limit. (The API's models do
    not refuse NUL themselves: they also carry what the bank holds, and a SQLite bank may hold some.)"""

    def __init__(self, app: ASGIApp, line_by_line: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.line_by_line = line_by_line

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_url(scope.get("path", ""), scope.get("query_string", b""))
        if where is not None:
            refusal = f"{where}: may not contain the NUL character (%00)"
            await _send_json(send, 422, error_body("invalid_input", refusal, where), [])
            return
        if scope.get("path") in self.line_by_line or not is_json_media_type(Headers(scope=scope).get("content-type")):
            await self.app(scope, receive, send)
            return
        # Read whole before the app runs (FastAPI reads a JSON body whole anyway), then handed on as it came.
        messages: list[Message] = []
        try:
            while True:
                messages.append(message := await receive())
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        except HTTPException as exc:  # BodySizeLimit's, raised from its receive once the limit is passed
            await _send_json(send, exc.status_code, error_body("payload_too_large", str(exc.detail), "body"), [])
            return
        where = _nul_in_json(b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request"))
        if where is not None:
            await _send_json(send, 422, error_body("invalid_input", nul_refusal(where), where), [])
            return
        pending = iter(messages)

        async def replaying_receive() -> Message:
            return next(pending, None) or await receive()

        await self.app(scope, replaying_receive, send)


def _nul_in_url(path: str, query: bytes) -> str | None:
    """'path', or the first query parameter holding a NUL (percent-encoded: the raw URL cannot carry one)."""
    if "\x00" in path:
        return "path"
    if b"%00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None


def _nul_in_json(body: bytes) -> str | None:
    # JSON can carry a NUL only as the escape \u0000; parsed to tell it from an escaped backslash before "u0000"
    # and to name the field. Malformed JSON is left to FastAPI, which answers it with 400.
    if b"\\u0000" not in body:
        return None
    try:
        return nul_path(json.loads(body))
    except (ValueError, RecursionError):
        return None


class ConcurrencyLimit:
    """At most max_in_flight requests handled at once; the next ones wait up to queue_timeout seconds for a
    slot, in arrival order, then get 503 with Retry-After. Without it a burst queues in the thread pool
    without end, every caller's latency grows, and memory with it.

    Health probes and metrics are exempt: an overloaded service is alive, and must be seen to be.
    """

    EXEMPT = frozenset({"/healthz", "/readyz", "/readyz/writes", "/metrics"})

    def __init__(self, app: ASGIApp, max_in_flight: int, queue_timeout: float) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        # Waiters' futures, oldest first; a finishing request hands its slot to the first one still waiting.
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if not await self._acquire():
            await _send_json(
                send,
                503,
                error_body("overloaded", f"{self.max_in_flight} requests are in flight already; retry shortly"),
                [(b"retry-after", b"1")],
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    async def _acquire(self) -> bool:
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        granted = False
        try:
            await asyncio.wait_for(waiter, self.queue_timeout)
            granted = True  # the releasing request passed its slot on: in_flight already counts this one
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if not granted and waiter.done() and not waiter.cancelled():
                self._release()  # a slot arrived as the wait ended (timeout or disconnect): hand it on
        return granted

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the oldest waiter
                return
        self.in_flight -= 1


async def _send_json(
    send: Send, status: int, content: Mapping[str, object], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
