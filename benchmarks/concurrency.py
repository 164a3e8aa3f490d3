"""Where 16 concurrent clients' throughput goes (issue 19, item 2): server settings against two ceilings.

scale.py reports the 16-client rate against the backend's batched rate (one embed() call over 400 prompts,
sorted by length). This script asks why the server stays below it, in one run, on the same 10k bank and the
same 960 distinct prompts as scale.py (its --work-dir cache; built there when missing):

1. the embedding alone: the server's embedder in this process, the 960 prompts in arrival order, in batches
   of 1, 3, 8 and 16 from two threads at once, as two lanes of micro-batches call it (texts/s): the most
   the server could answer if the rest of a request were free;
2. the request path alone: `fewshot serve` with the prompt cache on, the same prompts sent twice by the same
   16 clients; the second pass embeds nothing (requests/s);
3. server settings: 16 clients against the default (2 lanes), 1 lane, 3 lanes, and two server processes on
   the same bank with 8 clients each (what uvicorn workers would do, each process with its model and index).
   Each setting's rate is divided by the batched rate measured just before and after its passes: this
   machine's speed drifts by up to a fifth over minutes.

Each client is one keep-alive connection driven by asyncio in this process (scale.throughput, which deals
the clients round-robin between servers). For every 16-client pass the CPU time the server processes and
this process (the clients) used is read from /proc and divided by the requests answered: with both on the
same 2 cores, it says what the cores have left for the embedding at a given rate.

    .venv/bin/python benchmarks/concurrency.py --data ../shared/datasets --work-dir benchmarks/.cache/scale

The table is printed and appended to benchmarks/RESULTS.md (--no-record skips that).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import scale  # benchmarks/ is on the path when a script runs
from harness import load_average, machine_info, process_cpu_seconds, record_section

from fewshot_service.embedding import Embedder

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Concurrency: where 16 clients' throughput goes (issue 19, benchmarks/concurrency.py)"


def embedding_ceiling(embedder: Embedder, prompts: Sequence[str], batch: int, callers: int = 2) -> float:
    """texts/s when `callers` threads embed the prompts in arrival-order batches of `batch`."""
    batches = iter([list(prompts[i : i + batch]) for i in range(0, len(prompts), batch)])
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                texts = next(batches, None)
            if texts is None:
                return
            embedder.embed(texts)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(prompts) / (time.perf_counter() - started)


@dataclass(frozen=True)
class Pass:
    """One pass of the clients: requests/s, and CPU ms per request of the servers and of the clients."""

    rate: float
    server_cpu_ms: float
    client_cpu_ms: float


@contextlib.contextmanager
def servers(root: Path, count: int, port: int, settings: dict[str, str]) -> Iterator[list[scale.Server]]:
    scale.SERVER_SETTINGS.clear()
    scale.SERVER_SETTINGS.update(settings)
    try:
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(scale.serving(root, port + n)) for n in range(count)]
    finally:
        scale.SERVER_SETTINGS.clear()


def timed_pass(running: Sequence[scale.Server], prompts: Sequence[str], clients: int, warmup: Sequence[str]) -> Pass:
    pids = [server.process.pid for server in running]
    server_before = sum(process_cpu_seconds(pid) for pid in pids)
    client_before = time.process_time()
    rate, times = scale.throughput([server.url for server in running], prompts, clients, warmup)
    server_cpu = sum(process_cpu_seconds(pid) for pid in pids) - server_before
    client_cpu = time.process_time() - client_before
    # The warm-up requests (one per client) are in the CPU time too: count them.
    answered = len(times) + clients
    return Pass(rate, server_cpu / answered * 1000, client_cpu / answered * 1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder holding mmlu/, banking77/ and arc/.")
    parser.add_argument("--work-dir", type=Path, default=scale.REPO / "benchmarks" / ".cache" / "scale")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="Passes per server setting (best kept).")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    texts = scale.load_texts(args.data, 10_000, 200, 0)
    root = args.work_dir / "10k"
    scale.ensure_real_bank(root, texts.bank)
    prompts = list(texts.concurrent)
    started = load_average()

    embedder = scale.load_server_embedder()
    embedder.embed(prompts[:64])
    backend, cap = scale.encode_rate(embedder, prompts[:400])
    ceilings = {batch: embedding_ceiling(embedder, prompts, batch) for batch in (1, 3, 8, 16)}
    print(f"backend {backend:.0f} texts/s; two callers: {ceilings}", flush=True)

    def best(running: list[scale.Server], fresh: bool) -> Pass:
        passes = []
        for n in range(args.rounds):
            sent = [f"{p} (pass {n})" for p in prompts] if fresh else prompts
            passes.append(timed_pass(running, sent, args.clients, texts.warmup))
        return max(passes, key=lambda one: one.rate)

    # Each setting's passes are compared with the batched rate measured just before and just after them: this
    # machine's speed drifts by up to a fifth over minutes, so the rate from the start may not hold by then.
    rows: list[tuple[str, Pass, float]] = []
    with servers(root, 1, args.port, {}) as running:
        scale.throughput([server.url for server in running], prompts, args.clients, texts.warmup)  # fills the cache
        cached_pass = best(running, fresh=False)
    cached = cached_pass.rate
    print(f"cached prompts: {cached:.0f} req/s", flush=True)
    settings = [
        ("default: 1 process, 2 lanes (a thread each)", 1, {}),
        ("1 process, 1 lane (2 threads)", 1, {"FEWSHOT_EMBED_LANES": "1"}),
        ("1 process, 3 lanes (a thread each)", 1, {"FEWSHOT_EMBED_LANES": "3"}),
        ("2 processes, 2 lanes each, 8 clients each", 2, {}),
    ]
    for label, count, extra in settings:
        with servers(root, count, args.port, {"FEWSHOT_QUERY_CACHE_SIZE": "0", **extra}) as running:
            before, _ = scale.encode_rate(embedder, prompts[:400])
            one = best(running, fresh=True)
            after, _ = scale.encode_rate(embedder, prompts[:400])
        rows.append((label, one, (before + after) / 2))
        print(f"{label}: {one.rate:.0f} req/s; batched rate around it {before:.0f} / {after:.0f}", flush=True)

    # Two resources: the cores' embedding (1/ceiling s per text, at batch 3) and the request path's share of
    # the interpreter (1/cached s per request). Answering T requests a second needs T/ceiling + T/cached <= 1.
    ceiling = ceilings[3]
    bound = 1 / (1 / ceiling + 1 / cached)
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {machine_info()}. Load average (1/5/15 min): {started} at the start, {load_average()} at the end.",
        "Command: `python benchmarks/concurrency.py --data ../shared/datasets --work-dir benchmarks/.cache/scale`",
        f"(the 10k bank and the 960 distinct prompts of scale.py, {args.clients} clients, best of {args.rounds}"
        " passes).",
        "",
        "| measured | rate | share of the backend's batched rate | CPU ms per request: servers / clients |",
        "| --- | --- | --- | --- |",
        f"| backend's batched rate: one embed() of 400 prompts, sorted (cap {cap}) | {backend:.0f} texts/s | 1.00 "
        "| - |",
    ]
    for batch, rate in ceilings.items():
        lines.append(
            f"| embedding alone, two callers, arrival-order batches of {batch} | {rate:.0f} texts/s | "
            f"{rate / backend:.2f} | - |"
        )
    lines.append(
        f"| request path alone: 16 clients, every prompt cached | {cached:.0f} req/s | - | "
        f"{cached_pass.server_cpu_ms:.2f} / {cached_pass.client_cpu_ms:.2f} |"
    )
    for label, one, around in rows:
        lines.append(
            f"| 16 clients, {label} | {one.rate:.0f} req/s | **{one.rate / around:.2f}** of {around:.0f} texts/s "
            f"measured around its passes | {one.server_cpu_ms:.2f} / {one.client_cpu_ms:.2f} |"
        )
    cores = os.cpu_count() or 1
    default_around = rows[0][2]  # the budget is the default's, at the rate measured around its passes
    target = 0.8 * default_around
    embedding_ms = cores * 1000 / default_around  # the cores' time per text at the batched rate, if all embeds
    lines += [
        "",
        f"CPU budget at the issue's target: {target:.0f} requests/s on {cores} cores leaves "
        f"{cores * 1000 / target:.2f} ms of CPU per request, of which the embedding at the batched rate takes "
        f"{embedding_ms:.2f}: {cores * 1000 / target - embedding_ms:.2f} ms for the request path and the clients. "
        f"Measured with every prompt cached, they took {cached_pass.server_cpu_ms:.2f} (server) + "
        f"{cached_pass.client_cpu_ms:.2f} (clients) ms.",
        "",
        f"If embedding (at batches of 3) and the rest of a request could not overlap at all, 16 clients would get"
        f" 1 / (1/{ceiling:.0f} + 1/{cached:.0f}) = {bound:.0f} requests/s ({bound / backend:.2f} x the batched"
        " rate); they overlap in part, as ONNX Runtime releases the interpreter.",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        record_section(table, SECTION, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
