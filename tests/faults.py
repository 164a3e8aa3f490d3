"""A TCP proxy that injects bank outages: put between a server and PostgreSQL, switched by the test.

Modes:
- pass: forward bytes both ways (connections cut by an earlier fault are gone; new ones work);
- refuse: nothing listens (connections are refused) and open connections are closed, as when the
  database is stopped;
- blackhole: connections are accepted and open ones stay open, but no byte goes anywhere, as in a
  network partition; leaving it closes the frozen connections, as a partition's end does to them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.bank.guard import BankTimeouts
from fewshot_service.embedding import Embedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from .helpers import seed_rows, write_jsonl
from .servers import live_server

Mode = Literal["pass", "refuse", "blackhole"]


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


class FaultProxy:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.mode: Mode = "pass"
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._acceptor.start()

    def url(self, database_url: str) -> str:
        """database_url with host and port replaced by the proxy's."""
        from sqlalchemy.engine import make_url

        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(256)
        listener.settimeout(0.05)
        return listener

    def set(self, mode: Mode) -> None:
        with self._lock:
            previous, self.mode = self.mode, mode
            if mode != "blackhole" or previous == "refuse":
                # Leaving a partition or stopping the database ends the connections that were open.
                for pair in self._pairs:
                    pair.close()
                self._pairs.clear()
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None  # type: ignore[assignment]
            elif mode != "refuse" and self._listener is None:
                self._listener = self._listen(self.port)

    def close(self) -> None:
        self._stop.set()
        self.set("refuse")
        self._acceptor.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                self._stop.wait(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            with self._lock:
                mode = self.mode
            if mode == "refuse":
                client.close()
                continue
            upstream = None
            if mode == "pass":
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            if upstream is not None:
                threading.Thread(target=self._pump, args=(pair,), daemon=True).start()
            # A black-holed connection is only held: nothing reads it, nothing answers it.

    def _pump(self, pair: _Pair) -> None:
        assert pair.upstream is not None
        ends = {pair.client: pair.upstream, pair.upstream: pair.client}
        while not pair.closed and not self._stop.is_set():
            if self.mode == "blackhole":
                self._stop.wait(0.05)  # frozen: bytes stay where they are
                continue
            try:
                readable, _, _ = select.select(list(ends), [], [], 0.05)
                for sock in readable:
                    if self.mode == "blackhole":
                        break
                    data = sock.recv(65536)
                    if not data:
                        pair.close()
                        return
                    ends[sock].sendall(data)
            except (OSError, ValueError):
                pair.close()
                return


# -- load during a fault: concurrent writers and readers against one server ------------------------------

PROMPTS = (
    "A train travels 120 km in 2 hours. What is its average speed?",
    "Solve for x: 3x + 5 = 20.",
    "What is the probability of rolling two sixes with two dice?",
    "Convert 5 miles to kilometres.",
)


@dataclass
class Phase:
    """What one phase of load saw: select latencies, write answers, readiness answers."""

    name: str
    select_seconds: list[float] = field(default_factory=list)
    select_statuses: list[int] = field(default_factory=list)
    writes: list[tuple[int, float, str, dict[str, Any]]] = field(default_factory=list)  # status, s, input, body
    ready: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # seconds, body

    def acknowledged(self) -> list[str]:
        """Ids of the examples whose write was acknowledged (201)."""
        return [body["examples"][0]["id"] for status, _, _, body in self.writes if status == 201]

    def percentile(self, q: float) -> float:
        values = sorted(self.select_seconds)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    def row(self) -> str:
        ok = sum(s == 200 for s in self.select_statuses)
        written = sum(s == 201 for s, *_ in self.writes)
        refused = sum(s == 503 for s, *_ in self.writes)
        slowest_write = max((t for _, t, *_ in self.writes), default=0.0)
        slowest_ready = max((t for t, _ in self.ready), default=0.0)
        median = statistics.median(self.select_seconds) if self.select_seconds else float("nan")
        return (
            f"| {self.name} | {len(self.select_statuses)} | {len(self.select_statuses) - ok} | {median * 1000:.1f} | "
            f"{self.percentile(0.99) * 1000:.1f} | {len(self.writes)} | {written} | {refused} | "
            f"{len(self.writes) - written - refused} | {slowest_write:.2f} | {slowest_ready * 1000:.1f} |"
        )


HEADER = (
    "| phase | selects | select errors | select p50 ms | select p99 ms | writes | written | 503 | other | "
    "slowest write s | slowest /readyz ms |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def run_phase(base_url: str, name: str, *, writers: int = 50, readers: int = 4, seconds: float = 4.0) -> Phase:
    """`writers` concurrent writes (one new example each), while `readers` threads select and one thread
    asks /readyz, for at least `seconds` and until every write has answered."""
    phase = Phase(name)
    lock = threading.Lock()
    stop = threading.Event()

    def read(worker: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            n = worker
            while not stop.is_set():
                body = {"prompt": PROMPTS[n % len(PROMPTS)], "k": 4}
                n += 1
                started = time.perf_counter()
                status = client.post("/v1/select", json=body).status_code
                with lock:
                    phase.select_seconds.append(time.perf_counter() - started)
                    phase.select_statuses.append(status)

    def probe() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.get("/readyz")
                with lock:
                    phase.ready.append((time.perf_counter() - started, response.json()))
                stop.wait(0.1)

    # Clients are made before the clock starts: making 50 at once is itself a burst of CPU in this process.
    clients = [httpx.Client(base_url=base_url, timeout=60) for _ in range(writers)]
    go = threading.Barrier(writers + 1)

    def write(worker: int) -> None:
        text = f"{name} outage probe {worker} {uuid.uuid4().hex}: how many minutes are in {worker + 2} hours?"
        body = {"input": text, "output": f"{(worker + 2) * 60}", "tags": ["outage"], "status": "approved"}
        go.wait()
        started = time.perf_counter()
        response = clients[worker].post("/v1/examples", json=body, params={"on_duplicate": "keep"})
        elapsed = time.perf_counter() - started
        with lock:
            answer = response.json() | {"retry_after": response.headers.get("retry-after")}
            phase.writes.append((response.status_code, elapsed, text, answer))

    writing = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in writing:
        thread.start()
    background = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    background.append(threading.Thread(target=probe))
    for thread in background:
        thread.start()
    started = time.monotonic()
    go.wait()
    for thread in writing:
        thread.join()
    stop.wait(max(0.0, seconds - (time.monotonic() - started)))
    stop.set()
    for thread in background:
        thread.join()
    for client in clients:
        client.close()
    return phase


# -- a server whose bank is reached through the proxy ---------------------------------------------------------
CONNECT_S = 1.0
STATEMENT_S = 1.0


@contextmanager
def outage_server(
    root: Path, url: str, embedder: Embedder, start: str = "now", **overrides: Any
) -> Iterator[tuple[str, FewshotService]]:
    """uvicorn in a thread serving a bank at url with short timeouts (a slice of the seed bank, seeded at start)."""
    seeds = write_jsonl(root / "seeds" / "some.jsonl", seed_rows()[::5])  # enough to select from, quick to embed
    settings = Settings(
        database_url=url,
        data_dir=root / "data",
        index_dir=root / "indexes",
        seed_dir=seeds.parent,
        bank_connect_timeout_seconds=CONNECT_S,
        bank_statement_timeout_seconds=STATEMENT_S,
        bank_check_seconds=0.25,
        sync_poll_seconds=0.2,
        rate_limit_per_second=0,
        max_in_flight=500,
        **overrides,
    )
    bank = SqlBank(url, BankTimeouts(CONNECT_S, STATEMENT_S))
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    try:
        with live_server(create_app(settings, service, start=start)) as base:
            yield base, service
    finally:
        bank.close()


def bank_state(base: str) -> str:
    """What /readyz says of the bank: available, unavailable or unknown."""
    state: str = httpx.get(f"{base}/readyz", timeout=5).json()["bank"]
    return state
