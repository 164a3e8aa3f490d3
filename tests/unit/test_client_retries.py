"""The client's retry rules against a local stub HTTP server that answers from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fewshot_service.client import (
    FewshotClient,
    FewshotConnectionError,
    NotFound,
    RetryPolicy,
    Unavailable,
    ValidationFailed,
)
from fewshot_service.client._http import retry_after_seconds

from ..servers import free_port

SELECTED = {"examples": [], "strategy": "knn", "index_version": "v1", "took_ms": 1.0}


class Script:
    """Answers in order (status, headers, body); the last one repeats. Records each request's path."""

    def __init__(self, *answers: tuple[int, dict[str, str], dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, float]] = []


@pytest.fixture
def stub() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.seen.append((self.path, time.monotonic()))
            status, headers, body = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json", "X-Request-ID": "req-1"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def error(code: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": code.replace("_", " "), "field": field}}


def test_a_503_with_retry_after_seconds_is_waited_out(stub: tuple[str, Script]) -> None:
    url, script = stub
    script.answers = [(503, {"Retry-After": "1"}, error("not_ready")), (200, {}, SELECTED)]
    with FewshotClient(url) as client:
        assert client.select("q").index_version == "v1"
    (_, first), (_, second) = script.seen
    assert second - first >= 0.95


def test_a_retry_after_http_date_is_honoured(stub: tuple[str, Script]) -> None:
    url, script = stub
    # Three seconds ahead: the date drops the fraction (up to 1 s), and a slow machine takes a while to answer
    # the first request, so two seconds left under 0.9 s to wait once (0.85 s seen).
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    script.answers = [(429, {"Retry-After": later}, error("rate_limited")), (200, {}, SELECTED)]
    with FewshotClient(url) as client:
        client.select("q")
    (_, first), (_, second) = script.seen
    assert second - first >= 0.9  # the date has one-second resolution


def test_retries_stop_at_max_attempts_and_raise_the_typed_error(stub: tuple[str, Script]) -> None:
    url, script = stub
    script.answers = [(503, {}, error("overloaded"))]
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01)
    with FewshotClient(url, retry=policy) as client, pytest.raises(Unavailable) as raised:
        client.select("q")
    assert len(script.seen) == 3 and raised.value.code == "overloaded" and raised.value.request_id == "req-1"


def test_a_retry_after_beyond_the_time_budget_is_not_waited(stub: tuple[str, Script]) -> None:
    url, script = stub
    script.answers = [(503, {"Retry-After": "120"}, error("not_ready"))]
    started = time.monotonic()
    with FewshotClient(url, retry=RetryPolicy(max_total_seconds=5)) as client, pytest.raises(Unavailable):
        client.select("q")
    assert len(script.seen) == 1 and time.monotonic() - started < 2


@pytest.mark.parametrize(("status", "kind"), [(404, NotFound), (422, ValidationFailed)])
def test_other_4xx_are_never_retried(stub: tuple[str, Script], status: int, kind: type[Exception]) -> None:
    url, script = stub
    script.answers = [(status, {}, error("invalid_input", "k")), (200, {}, SELECTED)]
    with FewshotClient(url) as client, pytest.raises(kind):
        client.select("q")
    assert len(script.seen) == 1


def test_a_refused_connection_is_retried_for_select_only() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    policy = RetryPolicy(max_attempts=3, backoff_base=0.2)
    with FewshotClient(url, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(FewshotConnectionError):
            client.select("q")
        assert time.monotonic() - started >= 0.15  # two backoffs waited
        started = time.monotonic()
        with pytest.raises(FewshotConnectionError):
            client.add({"input": "x"})  # a write may have landed: never sent twice
        assert time.monotonic() - started < 0.1


def test_retry_after_reads_seconds_and_dates() -> None:
    import httpx

    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "3"})) == 3
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": past})) == 0
