"""The outermost middleware: a request id for every request, its metrics and one access log line.

Pure ASGI (no BaseHTTPMiddleware) so it adds microseconds, not a task per request, to every select. It
sees every answer, including the 413s and 503s that other middleware give before routing, and requests
that end in an unexpected exception: it answers those itself (500, the request id in the header and the
body) and logs their traceback once, with the request id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...logs import REQUEST_ID
from ..errors import unexpected_error
from ..metrics import Metrics

log = logging.getLogger("fewshot_service.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a caller's id is echoed and logged only if harmless
UNMATCHED = "unmatched"  # one label for every unknown path, so scanners cannot blow up the metrics


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            if _SAFE_ID.match(given):
                return given
    return uuid.uuid4().hex


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500  # unless a response starts
        responded = False
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answered and logged here, where the request id is known; not re-raised, so the server does
            # not log it again. A response already under way (a stream) can only be cut short.
            answer = unexpected_error(exc, request_id)
            if not responded:
                await answer(scope, receive, send_with_id)
        finally:
            took = time.perf_counter() - started
            self.metrics.in_flight.dec()
            route = self._route(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(took)
            principal = scope["state"].get("principal")
            client = scope.get("client")
            # The path, never the query string: search text and other caller data stay out of the logs.
            log.info(
                "%s %s %d",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(took * 1000, 3),
                    "client": client[0] if client else None,
                    "key": principal.name if principal is not None and principal.authenticated else None,
                },
            )
            REQUEST_ID.reset(token)

    def _route(self, scope: Scope) -> str:
        """The matched route's template (/v1/examples/{example_id}), never the raw path."""
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        # Answered before routing (413, 503): find the route the request was for.
        for candidate in iter_route_contexts(self.routes):  # an included router's routes, one by one
            if candidate.path is not None and candidate.matches(scope)[0] == Match.FULL:
                return str(candidate.path)
        return UNMATCHED
