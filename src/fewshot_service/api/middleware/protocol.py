"""What HTTP asks of every route, which FastAPI leaves to the application.

- HEAD is answered wherever GET is (RFC 9110 9.3.2): load balancers and uptime checks probe /healthz and
  /readyz with it, and FastAPI's routes answer only the methods they declare, so it was a 405.
- A request body in a content coding the service does not decode (Content-Encoding: gzip, br, ...) is
  refused with 415 naming the header (RFC 9110 15.5.16), instead of being parsed as if it were plain: a gzip
  body read as "not valid JSON", and a plain body labelled br was taken.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import error_body


class HeadAsGet:
    """Route HEAD as GET and send the answer's headers (Content-Length included) without its body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server keeps its own scope, which still says HEAD (uvicorn then sends no body either), and
        # so does the access log's; the route found for GET is handed back to it for the metrics' label.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, without_body)
        finally:
            if "route" in as_get:
                scope["route"] = as_get["route"]


class PlainBodiesOnly:
    """Answer 415 for a request whose Content-Encoding is anything but identity."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            codings = [value for name, value in scope.get("headers", []) if name == b"content-encoding"]
            sent = b",".join(codings).decode("latin-1").strip()
            if sent and any(coding.strip().lower() not in ("", "identity") for coding in sent.split(",")):
                shown = sent if len(sent) <= 64 else sent[:64] + "..."  # a header may be kilobytes long
                message = (
                    f"request bodies are read as sent, without a content coding; this one is {shown!r}: "
                    "send it uncompressed (responses are not compressed either)"
                )
                body = json.dumps(error_body("unsupported_media_type", message, "content-encoding")).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"accept-encoding", b"identity"),  # RFC 9110 12.5.3: what it does accept
                ]
                await send({"type": "http.response.start", "status": 415, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
