"""Curator writes against a real server: one at a time, in batches, and in a burst beside busy selects.

    python benchmarks/writes.py [--database-url URL] [--source LABEL=DIR ...] [--rounds 2] [--no-record]

Starts `fewshot serve` (loopback, a free port, keyless, rate limit off) over a fresh bank seeded with the
packaged seed bank: a SQLite file in a temporary folder, or, with --database-url pointing at a PostgreSQL
server, a database created for the run in that server and dropped after it. Then, on that one server:

- single: --singles (100) adds of one new example, one after another (client p50 and p90, ms);
- batch: 8 adds of 50 new examples each, one after another (median ms per request);
- burst: 20 clients each adding one example at the same moment (seconds until the last is answered);
- burst beside selects: the same while 4 clients select back to back on 4 prompts (answered from the prompt
  cache, so those requests are all Python and hold the interpreter the most), with their p50 and p99.

Every add is `on_duplicate=keep` with a distinct text, and must answer 201. --source LABEL=DIR (repeatable)
runs the server from another checkout's src/ (PYTHONPATH) instead of this one, so two revisions can be
compared in one run: rounds alternate between the sources, which evens out a machine whose speed drifts.
The table is printed and appended to benchmarks/RESULTS.md with the machine and date (--no-record skips it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from harness import REPO, free_port, launched, load_average, machine_info, percentile, record_section, wait_ready

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Curator writes (benchmarks/writes.py)"
BURST = 20
READERS = 4
BATCHES, BATCH_SIZE = 8, 50
PROMPTS = (
    "How many apples are left after eating 3 of 10?",
    "What is 15% of 80?",
    "A train goes 60 km/h for 2 hours; how far does it go?",
    "Solve 3x + 5 = 20.",
)


def add(client: httpx.Client, examples: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    response = client.post("/v1/examples", params={"on_duplicate": "keep"}, json={"examples": examples})
    if response.status_code != 201:
        raise RuntimeError(f"an add answered {response.status_code}: {response.text[:300]}")
    return time.perf_counter() - started


def example(n: int) -> dict[str, str]:
    # A fresh tag per text: no two adds of a run (or of two runs on one bank) are the same example.
    return {"input": f"[{uuid.uuid4().hex[:10]}] A crate holds {n + 3} boxes of 6 jars. How many jars?",
            "output": str((n + 3) * 6)}  # fmt: skip


def burst(url: str) -> float:
    """Seconds from the start of BURST simultaneous single adds until the last is answered."""
    clients = [httpx.Client(base_url=url, timeout=120, trust_env=False) for _ in range(BURST)]
    go = threading.Barrier(BURST + 1)
    threads = [
        threading.Thread(target=lambda c=c, n=n: (go.wait(), add(c, [example(n)]))) for n, c in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return elapsed


def burst_beside_selects(url: str) -> tuple[float, list[float]]:
    stop = threading.Event()
    latencies: list[float] = []

    def select(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
            n = worker
            while not stop.is_set():
                started = time.perf_counter()
                client.post("/v1/select", json={"prompt": PROMPTS[n % len(PROMPTS)], "k": 4}).raise_for_status()
                latencies.append(time.perf_counter() - started)
                n += 1

    readers = [threading.Thread(target=select, args=(n,)) for n in range(READERS)]
    for reader in readers:
        reader.start()
    time.sleep(2.0)  # every prompt cached, the readers at full pace
    latencies.clear()
    elapsed = burst(url)
    stop.set()
    for reader in readers:
        reader.join()
    return elapsed, latencies


def measure(url: str, singles: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        add(client, [example(0)])  # warm: the first write opens connections and compiles statements
        one = [add(client, [example(n)]) for n in range(singles)]
        batches = [add(client, [example(n) for n in range(BATCH_SIZE)]) for _ in range(BATCHES)]
    alone = burst(url)
    beside, selects = burst_beside_selects(url)
    return {
        "single p50": percentile(one, 50) * 1000,
        "single p90": percentile(one, 90) * 1000,
        "batch": statistics.median(batches) * 1000,
        "burst": alone,
        "burst beside selects": beside,
        "select p50": percentile(selects, 50) * 1000,
        "select p99": percentile(selects, 99) * 1000,
    }


@contextmanager
def fresh_bank(database_url: str | None, run: int) -> Iterator[str | None]:
    """None (the server's default SQLite file under work/), or the URL of a new PostgreSQL database."""
    if database_url is None:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"fewshot_bench_writes_{os.getpid()}_{run}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_server(source: Path | None, database_url: str | None, work: Path, run: int, singles: int) -> dict[str, float]:
    env = dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(work / "data"),
        FEWSHOT_INDEX_DIR=str(work / "indexes"),
        FEWSHOT_RATE_LIMIT_PER_SECOND="0",
        HF_HUB_OFFLINE="1",
    )
    for name in ("FEWSHOT_API_KEYS", "FEWSHOT_DATABASE_URL", "FEWSHOT_SEED_DIR", "FEWSHOT_SEED_ON_EMPTY"):
        env.pop(name, None)
    if source is not None:
        env["PYTHONPATH"] = str(source / "src")
    port = free_port()
    command = [str(Path(sys.executable).with_name("fewshot")), "serve", "--port", str(port)]
    with fresh_bank(database_url, run) as url:
        if url is not None:
            env["FEWSHOT_DATABASE_URL"] = url  # the server creates the schema of an empty database
        with launched(command, env, work / "server.log") as process:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, process, work / "server.log")
            return measure(base, singles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="A PostgreSQL server to create each run's database in (else SQLite).")
    parser.add_argument("--source", action="append", default=[], help="LABEL=DIR: serve from DIR/src (repeatable).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--singles", type=int, default=100)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sources: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.source:
        sources = [(label, Path(path).resolve()) for label, _, path in (s.partition("=") for s in args.source)]
    began = time.perf_counter()
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="fewshot-bench-writes-") as tmp:
        for round_number in range(1, args.rounds + 1):
            for label, source in sources:
                work = Path(tmp) / f"{len(rows)}"
                work.mkdir()
                figures = run_server(source, args.database_url, work, len(rows), args.singles)
                rows.append((label, round_number, figures))
                print(label, round_number, {k: round(v, 2) for k, v in figures.items()}, flush=True)
    bank = "PostgreSQL (a database per run)" if args.database_url else "SQLite (a file per run)"
    columns = ["single p50", "single p90", "batch", "burst", "burst beside selects", "select p50", "select p99"]
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {machine_info()}. Load average at the end: {load_average()}.",
        f"Command: `{' '.join(['python', *sys.argv])}` ({(time.perf_counter() - began) / 60:.0f} min). Bank: {bank}, "
        f"seeded with the packaged seed bank; sources: "
        + ", ".join(f"{label} ({source or REPO})" for label, source in sources)
        + ".",
        "",
        f"single: one add at a time ({args.singles}); batch: {BATCH_SIZE} examples per add, median of {BATCHES}; "
        f"burst: {BURST} adds at once, seconds until the last answer; beside selects: the same while {READERS} "
        "clients select back to back on cached prompts (their p50 and p99 during the burst).",
        "",
        "| source | round | single p50 ms | single p90 ms | batch of 50 ms | burst s | burst beside selects s | "
        "select p50 ms | select p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[
            f"| {label} | {n} | "
            + " | ".join(f"{figures[c]:.2f}" if "burst" in c else f"{figures[c]:.0f}" for c in columns)
            + " |"
            for label, n, figures in rows
        ],
    ]
    text = "\n".join(lines)
    print("\n" + text + "\n")
    if not args.no_record:
        record_section(text, SECTION, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
