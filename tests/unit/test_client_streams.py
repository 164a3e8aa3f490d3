"""A streamed or paged read that breaks off midway (a stall past the timeout, a dropped connection) raises the
documented FewshotConnectionError with httpx's error as its cause, from a stub server that misbehaves on cue."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fewshot_service.client import AsyncFewshotClient, FewshotClient, FewshotConnectionError, RetryPolicy

RECORD = {
    "id": "e1",
    "input": "What is 2 + 2?",
    "output": "4",
    "source": "curated",
    "status": "approved",
    "created_at": "2026-12-07T00:00:00Z",
    "updated_at": "2026-12-07T00:00:00Z",
    "version": 1,
}
PAGE = {"examples": [RECORD], "next_cursor": "page-2"}


@pytest.fixture(params=["stall", "drop"])
def broken(request: pytest.FixtureRequest) -> Iterator[str]:
    """A service whose export sends one line of a promised longer body, and whose second page of examples
    starts the same way, then stalls for 1.5 s or drops the connection."""
    how = request.param

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            first = json.dumps(PAGE if "cursor" not in self.path else RECORD).encode()
            if self.path.startswith("/v1/examples/export"):
                first = json.dumps(RECORD).encode() + b"\n"
            elif "cursor" not in self.path:  # the first page of examples, whole
                self.send_response(200)
                self.send_header("Content-Length", str(len(first)))
                self.end_headers()
                self.wfile.write(first)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(first) + 10_000))  # more than will come
            self.end_headers()
            self.wfile.write(first)
            self.wfile.flush()
            if how == "stall":
                time.sleep(1.5)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


QUICK = RetryPolicy(max_attempts=1)


def test_an_export_that_breaks_off_raises_the_connection_error(broken: str) -> None:
    read: list[str] = []
    with FewshotClient(broken, timeout=0.5, retry=QUICK) as client, pytest.raises(FewshotConnectionError) as cut:
        for record in client.export():
            read.append(record.id)
    assert read == ["e1"]  # what arrived was handed out before the break
    assert isinstance(cut.value.__cause__, httpx.TransportError) and cut.value.code == "connection_error"
    assert type(cut.value.__cause__).__name__ in cut.value.message


def test_an_async_export_that_breaks_off_raises_the_connection_error(broken: str) -> None:
    async def run() -> list[str]:
        read: list[str] = []
        async with AsyncFewshotClient(broken, timeout=0.5, retry=QUICK) as client:
            with pytest.raises(FewshotConnectionError) as cut:
                async for record in client.export():
                    read.append(record.id)
        assert isinstance(cut.value.__cause__, httpx.TransportError)
        return read

    assert asyncio.run(run()) == ["e1"]


def test_iterating_pages_that_break_off_raises_the_connection_error(broken: str) -> None:
    read: list[str] = []
    with FewshotClient(broken, timeout=0.5, retry=QUICK) as client, pytest.raises(FewshotConnectionError) as cut:
        for example in client.iter_examples():
            read.append(example.id)
    assert read == ["e1"] and isinstance(cut.value.__cause__, httpx.TransportError)
