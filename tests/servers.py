"""Servers for tests that need real sockets: a free port, an app served by uvicorn in a thread, and waiting
for a server started as its own process."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until_answers(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    path: str = "/readyz",
    timeout: float = 180,
    interval: float = 0.2,
) -> None:
    """Poll `url + path` until it answers 200, for a server started as a separate process.

    Fails at once, with the end of the server's log, when the process has exited, and after `timeout`
    seconds otherwise: a server that never comes up shows why instead of hanging the suite."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the server exited ({process.returncode}):\n" + log.read_text()[-3000:]
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"{path} not 200 within {timeout:.0f} s:\n" + log.read_text()[-3000:]
        time.sleep(interval)
