"""What the Python client and the LangChain adapter add to a /v1/select call (issue 17), and the client's import time.

One `fewshot serve` on 127.0.0.1 (the packaged seed bank, in a temporary folder unless --work-dir), the same
prompts (the seed bank's inputs, reworded so the leakage guard keeps the bank whole) and k for three callers:
(a) raw httpx: one persistent httpx.Client posting the JSON body and parsing the JSON answer;
(b) FewshotClient.select, which also validates the answer into the service's SelectResponse model;
(a') raw httpx asking only for the fields a prompt shows (`fields: ["input", "output"]`);
(b') FewshotClient.select with the same fields (a PartialSelectResponse);
(c) FewshotExampleSelector.select_examples (LangChain), which asks for those fields and maps each example to
    a dict.
They take turns per prompt, in an order rotating every prompt, so drift in machine speed hits them alike; each
reports client-side wall time. Targets: each p50 <= 1.05 x the p50 of raw httpx sending the same body ((b)
against (a), (b') and (c) against (a')); the exit status is 1 when missed.
Then the import time of fewshot_service.client in a fresh interpreter (median of --import-runs), beside httpx
and pydantic's own.

    .venv/bin/python benchmarks/client.py --queries 300 --record
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from harness import record_section, version_of  # benchmarks/ is on the path when a script runs

from fewshot_service.client import FewshotClient
from fewshot_service.client.langchain import FewshotExampleSelector

REPO = Path(__file__).resolve().parents[1]
RAW = "raw httpx"
RAW_FIELDS = "raw httpx, fields input+output"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Python client and LangChain adapter overhead (issue 17)"
TARGET = 1.05


def prompts(count: int) -> list[str]:
    texts = [
        json.loads(line)["input"]
        for path in sorted((REPO / "seed_examples").glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return [f"Similar problem: {texts[n % len(texts)]}" for n in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(work_dir: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, FEWSHOT_DATA_DIR=str(work_dir / "data"), FEWSHOT_INDEX_DIR=str(work_dir / "indexes"))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["FEWSHOT_RATE_LIMIT_PER_SECOND"] = "0"  # one caller sending as fast as it can is not abuse here
    with (work_dir / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("fewshot")), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited; see {work_dir / 'server.log'}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server was not ready within 600 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def callers(url: str, k: int) -> tuple[dict[str, Callable[[str], list[str]]], Callable[[], None]]:
    raw = httpx.Client(base_url=url, timeout=30)
    client = FewshotClient(url)
    selector = FewshotExampleSelector(client, k=k, id_key="id")

    def with_httpx(prompt: str) -> list[str]:
        answer = raw.post("/v1/select", json={"prompt": prompt, "k": k})
        answer.raise_for_status()
        return [example["id"] for example in answer.json()["examples"]]

    def with_httpx_fields(prompt: str) -> list[str]:
        answer = raw.post("/v1/select", json={"prompt": prompt, "k": k, "fields": ["input", "output"]})
        answer.raise_for_status()
        return [example["id"] for example in answer.json()["examples"]]

    def with_client(prompt: str) -> list[str]:
        return [example.id for example in client.select(prompt, k=k).examples]

    def with_client_fields(prompt: str) -> list[str]:
        return [example.id for example in client.select(prompt, k=k, fields=["input", "output"]).examples]

    def with_langchain(prompt: str) -> list[str]:
        return [example["id"] for example in selector.select_examples({"input": prompt})]

    def close() -> None:
        raw.close()
        client.close()

    methods = {
        RAW: with_httpx,
        "FewshotClient.select": with_client,
        RAW_FIELDS: with_httpx_fields,
        "FewshotClient.select, fields input+output": with_client_fields,
        "LangChain adapter (fields input+output)": with_langchain,
    }
    return methods, close


def measure(url: str, queries: list[str], k: int, warmup: int) -> dict[str, list[float]]:
    methods, close = callers(url, k)
    names = list(methods)
    for prompt in queries[:warmup]:
        for name in names:
            methods[name](prompt)
    timings: dict[str, list[float]] = {name: [] for name in names}
    try:
        for n, prompt in enumerate(queries):
            chosen: list[list[str]] = []
            for name in names[n % len(names) :] + names[: n % len(names)]:
                started = time.perf_counter()
                chosen.append(methods[name](prompt))
                timings[name].append((time.perf_counter() - started) * 1000)
            if any(ids != chosen[0] for ids in chosen):
                raise RuntimeError(f"the callers disagree on the examples for {prompt!r}")
    finally:
        close()
    return timings


def import_seconds(statement: str, runs: int) -> float:
    probe = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
             for _ in range(runs)]  # fmt: skip
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--import-runs", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, help="bank and index folder (a temporary one if omitted)")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="a line recorded with the table (e.g. that the machine was busy)")
    args = parser.parse_args()

    queries = prompts(args.queries + args.warmup)
    with tempfile.TemporaryDirectory() as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        with server(work_dir) as url:
            timings = measure(url, queries[args.warmup :], args.k, args.warmup)
    rows = [
        "| caller | p50 ms | p95 ms | p50 / raw httpx with the same body | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    passed = True
    for name, values in timings.items():
        p50, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
        baseline = RAW_FIELDS if "fields" in name else RAW
        ratio = p50 / statistics.median(timings[baseline])
        target = "" if name in (RAW, RAW_FIELDS) else f"<= {TARGET}"
        passed &= name in (RAW, RAW_FIELDS) or ratio <= TARGET
        rows.append(f"| {name} | {p50:.2f} | {p95:.2f} | {ratio:.3f} | {target} |")
    client_import = import_seconds("import fewshot_service.client", args.import_runs)
    base_import = import_seconds("import httpx, pydantic", args.import_runs)
    rows.append("")
    rows.append(
        f"Import of fewshot_service.client in a fresh interpreter: {client_import * 1000:.0f} ms "
        f"(httpx and pydantic alone: {base_import * 1000:.0f} ms), median of {args.import_runs}."
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Run {when}: {args.queries} prompts, k={args.k}, default strategy, one server, callers interleaved; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, httpx {version_of('httpx')}, "
        f"langchain-core {version_of('langchain-core')}. {'Targets met.' if passed else 'Targets MISSED.'}"
    )
    text = "\n".join([header, *([args.note] if args.note else []), "", *rows])
    print(text)
    if args.record:
        record_section(text, SECTION, RESULTS)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
