"""What /v1/select costs besides the embedding, in-process (issue 19's profile).

The real app (create_app: every middleware, the route, the service, the selection recorder) is called as
an ASGI application, without a socket, over the bank in --root (the data/ and indexes/ folders a benchmark
left, e.g. select_latency.py's benchmarks/.cache/gsm8k) or over the packaged seed bank in a temporary
folder. The prompts' vectors are computed beforehand and served from memory, so what is timed is everything
but the model: middleware, validation, authentication, the thread hop, the FAISS search, the strategy, the
selection record and the JSON. Reported: p50 wall time per request and the process's CPU time per request
(all its threads, the recorder's included); --profile adds cProfile's top functions on the event loop's
thread. Then the route's thread hop alone (the event loop handing a call to a worker thread and getting the
answer back), back to back and after --idle-ms of idling: a select's hops come after the event loop and the
worker have slept (the client's turn, the embedding), and waking a sleeping thread costs time of its own.

    .venv/bin/python benchmarks/select_overhead.py --root benchmarks/.cache/gsm8k \\
        --prompts ../shared/datasets/gsm8k/test.jsonl 2>/dev/null   # stderr: the access log
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import machine_info  # benchmarks/ is on the path when a script runs


def scope_for(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/select",
        "raw_path": b"/v1/select",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, body: bytes) -> None:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope_for(body), receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"/v1/select answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")


async def thread_hops(pause_s: float, count: int = 300) -> tuple[float, float]:
    """p50 ms of the route's hop to a worker thread (anyio's, as run_in_threadpool takes it) and of the hop back
    after a call as long as pause_s busy in the worker; each starts after pause_s idle, as a select does
    (pause_s 0: back to back)."""
    import anyio.to_thread

    def work() -> float:
        finish = time.perf_counter() + pause_s
        while time.perf_counter() < finish:  # busy, as the embedding keeps the worker
            pass
        return time.perf_counter()

    def arrive() -> float:
        return time.perf_counter()

    there: list[float] = []
    back: list[float] = []
    for _ in range(count):
        if pause_s:
            await asyncio.sleep(pause_s)
        started = time.perf_counter()
        arrived = await anyio.to_thread.run_sync(arrive)
        there.append((arrived - started) * 1000)
        finished = await anyio.to_thread.run_sync(work)
        back.append((time.perf_counter() - finished) * 1000)
    return statistics.median(there), statistics.median(back)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="A folder with data/ and indexes/ (default: the seed bank).")
    parser.add_argument("--prompts", type=Path, help="JSONL with a 'question' per line (default: seed inputs).")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--strategy", help="Sent in every request (default: the server's).")
    parser.add_argument("--idle-ms", type=float, default=12.0, help="Idle pause before the timed thread hops.")
    parser.add_argument("--profile", action="store_true", help="Print cProfile's top 40 by own time.")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="fewshot-overhead-")
    root = args.root or Path(scratch.name)
    os.environ.update(
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_ON_EMPTY="false" if args.root else "true",
        FEWSHOT_QUERY_CACHE_SIZE="0",
        HF_HUB_OFFLINE="1",
    )
    from fewshot_service import logs
    from fewshot_service.api import build_service, create_app
    from fewshot_service.serving.seeding import seed_inputs
    from fewshot_service.settings import Settings

    settings = Settings()
    logs.configure("INFO", settings.log_format)  # the access line is part of the cost
    service = build_service(settings)
    service.start()
    if args.prompts:
        with args.prompts.open(encoding="utf-8") as handle:
            prompts = [json.loads(line)["question"] for line in handle][: args.queries]
    else:
        prompts = [f"{text} (asked again)" for text in list(seed_inputs())[: args.queries]]
    embedder = service.selector._embedder()
    vectors = dict(zip(prompts, embedder.embed(prompts), strict=True))
    service.selector._prompt_vector = vectors.__getitem__  # type: ignore[method-assign]
    app = create_app(settings, service, start="no")
    extra = {"strategy": args.strategy} if args.strategy else {}
    bodies = [json.dumps({"prompt": prompt, "k": 4, **extra}).encode() for prompt in prompts]

    async def run() -> tuple[list[float], float]:
        async with app.router.lifespan_context(app):
            for body in bodies:  # warm-up
                await call(app, body)
            times: list[float] = []
            cpu_started = time.process_time()
            for _ in range(args.rounds):
                for body in bodies:
                    started = time.perf_counter()
                    await call(app, body)
                    times.append((time.perf_counter() - started) * 1000)
            cpu = (time.process_time() - cpu_started) / len(times) * 1000
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                for body in bodies:
                    await call(app, body)
                profile.disable()
                pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(40)
            return times, cpu

    times, cpu = asyncio.run(run())
    import uvloop  # what uvicorn runs the server on (uvicorn[standard])

    hops = {pause: uvloop.run(thread_hops(pause)) for pause in (0.0, args.idle_ms / 1000)}
    print(f"Machine: {machine_info()}")
    print(
        f"/v1/select in-process without the embedding, {len(times)} requests over {len(prompts)} prompts: "
        f"p50 {statistics.median(times):.3f} ms wall, {cpu:.3f} ms of process CPU per request"
    )
    for pause, (there, back) in hops.items():
        ms = f"{pause * 1000:g} ms"
        when = f"after {ms} idle (and back after {ms} busy)" if pause else "back to back"
        print(f"thread hop {when}: to a worker p50 {there:.3f} ms, back to the event loop p50 {back:.3f} ms")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
