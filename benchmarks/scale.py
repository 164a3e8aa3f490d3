"""Scale benchmark (issue 4): /v1/select at 10k, 100k and 1M examples; throughput, ingest, rebuild, memory.

What one run measures, in this order:

1. The model's own batched encode rate (texts/s): sentence-transformers' encode() on PyTorch, the model as
   its library runs it, the best of batch sizes 8-64, on the concurrent clients' prompts and on the bank
   texts ingested; and, stricter, the same with the backend the server uses (ONNX Runtime when it agrees
   with PyTorch, batches cut by length), which is faster. On a CPU, embedding is the physical limit; the
   verdicts use the first, as the issue words it, and the ratio to the second is printed beside them.
2. 10k, end to end: 10,000 question texts from MMLU, BANKING77 and ARC (a seeded mix) ingested into an empty
   `fewshot serve` subprocess through POST /v1/examples, 500 per request (examples/s against the encode
   rate); /v1/select (k=4, the default strategy) over HTTP, one client, client-side wall time, p50 and p99,
   against LangChain's SemanticSimilarityExampleSelector with the same model (sentence-transformers, as a
   LangChain user would run it), bank (its stored embeddings) and queries, the two taking turns in blocks
   of 25 queries; then 16 concurrent clients (requests/s against the encode rate), each a keep-alive
   connection, every prompt distinct and sent once. The server backend's batched rate is measured again
   just before and just after that pass: on this kind of machine speed drifts by up to a fifth over minutes
   (the same measurement gave 223 and 275 texts/s eight minutes apart), so a ratio is only as good as the
   nearness of its two figures.
3. 100k and 1M: banks of synthetic vectors written straight into SQLite (the model does not embed a million
   texts). Each vector mixes two of the 10k bank's real embeddings and adds Gaussian noise, so
   neighbourhoods look like those of sentence embeddings, which cluster by subject; uniformly random
   vectors, the hard case for any approximate index, are measured separately (step 4). Queries are the
   same real texts, embedded by the server. For each: `fewshot rebuild` (wall time, peak RSS), start-up of
   `fewshot serve` with that index, /v1/select p50 and p99.
4. In this process, on the 1M bank: recall@10 of the served index against exact search (a full scan of the
   stored vectors), and of float16 and 8-bit storage; filtered search at several selectivities, approximate
   against the exact scan over the matching slots; recall of the same index on 1M random unit vectors.

Targets (from the issue): p50 at 1M <= 1.5 x p50 at 10k; recall@10 >= 0.95 at 1M; p50 at 10k <= 0.7 x
LangChain's; 16-client throughput and API ingest >= 0.8 x the encode rate; rebuild of 1M from stored
embeddings <= 120 s with peak RSS <= 1.3 x (vectors + model), where "model" is the peak RSS of a process
that only loads the embedder and embeds one batch (interpreter, libraries and weights); start-up with an
existing index at 100k <= 10 s.

Run (needs the bench extra, `pip install -e '.[bench]'`; about 20 minutes on 2 cores)::

    .venv/bin/python benchmarks/scale.py --data ../shared/datasets --work-dir benchmarks/.cache/scale

The synthetic banks are kept in --work-dir and reused by later runs. The table is printed and appended to
benchmarks/RESULTS.md (``--no-record`` skips that). Timing on a shared machine is noisy: the load average
is recorded beside every phase.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from harness import (  # benchmarks/ is on the path when a script runs
    launched,
    load_average,
    machine_info,
    percentile,
    record_section,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Scale (issue 4)"
FEWSHOT = str(Path(sys.executable).with_name("fewshot"))
DIM = 384
K = 4
INGEST_BATCH = 500
BLOCK = 25
SYNTHETIC_NOISE = 0.5  # norm of the noise added to each mixed vector (cosine to the mix about 0.9)
SYNTHETIC_TOPICS = 100  # topic t00..t99, uniform: filters on 1, 2, 5, 20 of them keep 1-20% of the bank


# -- small helpers ------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {load_average()})", flush=True)


SERVER_SETTINGS: dict[str, str] = {}  # --server-setting NAME=VALUE, for every server and command started


def server_env(root: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FEWSHOT_")}
    env.update(
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_ON_EMPTY="false",
        FEWSHOT_RATE_LIMIT_PER_SECOND="0",  # one benchmark client sends far more than a tenant would
        FEWSHOT_MAX_BODY_BYTES=str(16 * 1024 * 1024),  # 500 long MMLU questions exceed the 1 MiB default
        FEWSHOT_LOG_FORMAT="text",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    env.update(SERVER_SETTINGS)
    env.update(extra)
    return env


def load_server_embedder() -> Any:
    """The embedder `fewshot serve` loads with default settings (the same backend choice and checks)."""
    from fewshot_service.api.app import configured_embedder
    from fewshot_service.settings import Settings

    return configured_embedder(Settings())


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (VmHWM), in MiB. Not getrusage: Linux carries the parent's resident
    size at fork over into a child's ru_maxrss, and this process holds gigabytes when it starts servers."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


class PeakWatch:
    """Follows a child's peak RSS until it exits (VmHWM only grows, so the last reading is the peak)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, peak_rss_mb(self.pid))
            except (OSError, RuntimeError):
                return  # gone (a zombie has no memory left to report)
            time.sleep(0.02)

    def result(self) -> float:
        self._thread.join(timeout=5)
        return self.peak


def model_only_rss_mb() -> float:
    """Peak RSS of a fresh process that loads the server's embedder (what `fewshot rebuild` loads when every
    example is embedded already; embedding grows the runtime's buffers, which a rebuild from stored
    embeddings never does)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import scale; "
        "e = scale.load_server_embedder(); e.embed(['one short question']); print(scale.peak_rss_mb())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        env=server_env(Path("/nonexistent")),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


# -- data ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Texts:
    bank: list[dict[str, Any]]  # POST /v1/examples bodies
    queries: list[str]  # timed one at a time
    warmup: list[str]
    # Prompts of the concurrent clients: each sent once, and none sent before, so the server's cache of
    # query embeddings cannot answer them and every request costs a model call.
    concurrent: list[str]


def load_texts(data: Path, bank_size: int, queries: int, seed: int, concurrent: int = 960) -> Texts:
    from fewshot_service.evaluation.datasets import load_dataset

    records, pool = [], []
    for name in ("mmlu", "banking77", "arc"):
        dataset = load_dataset(name, data)
        records += dataset.records
        pool += [query.text for query in dataset.queries]
    rng = np.random.default_rng(seed)
    chosen = [records[int(i)] for i in rng.permutation(len(records))[:bank_size]]
    if len(chosen) < bank_size:
        raise SystemExit(f"the data sets hold {len(chosen)} bank texts; {bank_size} needed")
    bodies = [
        {
            "external_id": record.external_id,
            "input": record.input,
            "output": record.output,
            "topic": record.topic,
            "difficulty": record.difficulty,
            "source": "imported",
            "status": "approved",
        }
        for record in chosen
    ]
    order = list(dict.fromkeys(pool[int(i)] for i in rng.permutation(len(pool))))  # distinct texts
    if len(order) < queries + 20 + concurrent:
        raise SystemExit(f"the data sets hold {len(order)} distinct queries; {queries + 20 + concurrent} needed")
    rest = order[queries + 20 :]
    return Texts(bodies, order[:queries], order[queries : queries + 20], rest[:concurrent])


# -- synthetic banks ----------------------------------------------------------------------------------
def synthetic_vectors(rng: np.random.Generator, centres: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, index of the centre each leans on): w*a + (1-w)*b + noise, w uniform in [0.5, 1]."""
    first = rng.integers(0, len(centres), count)
    second = rng.integers(0, len(centres), count)
    weight = rng.uniform(0.5, 1.0, (count, 1)).astype(np.float32)
    noise = rng.standard_normal((count, centres.shape[1]), dtype=np.float32) * float(SYNTHETIC_NOISE / np.sqrt(DIM))
    vectors = (weight * centres[first] + (1 - weight) * centres[second] + noise).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, first


def write_synthetic(
    url: str, centres: np.ndarray, texts: Sequence[str], start: int, count: int, model_id: str, seed: int
) -> None:
    """Append count approved examples with stored embeddings, 20,000 per transaction, straight into the
    examples table (the bank's insert checks and audits each row: hours for a million)."""
    from sqlalchemy import insert, select, update

    from fewshot_service.bank import SqlBank
    from fewshot_service.bank.base import input_hash, now
    from fewshot_service.bank.schema import bank_meta, examples

    bank = SqlBank(url)
    bank.create_schema()
    rng = np.random.default_rng(seed + start)
    try:
        for chunk in range(start, start + count, 20_000):
            size = min(20_000, start + count - chunk)
            vectors, leaning = synthetic_vectors(rng, centres, size)
            stamp = now()
            with bank.writer.begin() as conn:
                conn.execute(update(bank_meta).where(bank_meta.c.key == "revision").values(value=bank_meta.c.value + 1))
                revision = int(
                    conn.execute(select(bank_meta.c.value).where(bank_meta.c.key == "revision")).scalar_one()
                )
                rows = []
                for offset in range(size):
                    n = chunk + offset
                    text = f"{texts[int(leaning[offset])][:300]} (synthetic {n})"
                    rows.append(
                        {
                            "id": uuid.uuid4().hex, "external_id": None, "input": text, "output": "", "steps": None,
                            "topic": f"t{n % SYNTHETIC_TOPICS:02d}", "difficulty": n % 5 + 1, "tags": [],
                            "source": "imported", "status": "approved", "quality": None, "meta": {},
                            "created_at": stamp, "updated_at": stamp, "version": 1, "revision": revision,
                            "embedding": vectors[offset].tobytes(), "embedding_model": model_id,
                            "embedding_dim": DIM, "input_hash": input_hash(text), "deleted_at": None,
                            "predicted_quality": None,
                        }
                    )  # fmt: skip
                conn.execute(insert(examples), rows)
    finally:
        bank.close()


def ensure_synthetic_bank(root: Path, size: int, base: Path | None, centres: np.ndarray, texts: list[str]) -> None:
    """root/data/bank.sqlite3 with size synthetic examples, built once (base: a smaller bank to extend)."""
    from fewshot_service.embedding import PACKAGED_MODEL_ID

    marker = root / f"synthetic-{size}.done"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    target = root / "data" / "bank.sqlite3"
    have = 0
    if base is not None:
        with sqlite3.connect(base / "data" / "bank.sqlite3") as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        have = int(next(base.glob("synthetic-*.done")).name.split("-")[1].split(".")[0])
    log(f"writing {size - have:,} synthetic examples into {target}")
    write_synthetic(f"sqlite:///{target}", centres, texts, have, size - have, PACKAGED_MODEL_ID, seed=1)
    marker.write_text(json.dumps({"size": size, "noise": SYNTHETIC_NOISE}))


def stored_embeddings(root: Path) -> tuple[list[str], np.ndarray]:
    """(inputs, embeddings) of a bank's examples, in id order."""
    from fewshot_service.bank import SqlBank
    from fewshot_service.embedding import PACKAGED_MODEL_ID

    bank = SqlBank(f"sqlite:///{root / 'data' / 'bank.sqlite3'}")
    try:
        inputs = {example.id: example.input for example in bank.iter_examples()}
        rows = list(bank.iter_index_rows(PACKAGED_MODEL_ID))
    finally:
        bank.close()
    return [inputs[row.id] for row in rows], np.stack([row.embedding for row in rows])


# -- server processes ---------------------------------------------------------------------------------
@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    ready_seconds: float
    ready: dict[str, Any]
    peak_rss_mb: float = float("nan")


@contextmanager
def serving(root: Path, port: int) -> Iterator[Server]:
    """`fewshot serve` on root's bank and indexes; timed from launch to the first 200 from /readyz."""
    log_path = root / "server.log"
    started = time.perf_counter()
    command = [FEWSHOT, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with launched(command, server_env(root), log_path) as process:
        watch = PeakWatch(process.pid)
        server: Server | None = None
        try:
            # A large bank embeds and indexes before it is ready: allow an hour, not the default minutes.
            ready = wait_ready(f"http://127.0.0.1:{port}", process, log_path, timeout=3600)
            server = Server(process, f"http://127.0.0.1:{port}", time.perf_counter() - started, ready)
            yield server
        finally:
            if server is not None:
                server.peak_rss_mb = peak_rss_mb(process.pid)
            process.terminate()  # before the watch stops, so it sees the process end
            watch.result()


def rebuild(root: Path) -> tuple[float, float, str]:
    """`fewshot rebuild` on root: (wall seconds, peak RSS in MiB, its last output line)."""
    log_path = root / "rebuild.log"
    started = time.perf_counter()
    with log_path.open("wb") as output:
        process = subprocess.Popen([FEWSHOT, "rebuild"], env=server_env(root), stdout=output, stderr=output)
    watch = PeakWatch(process.pid)
    process.wait()
    wall = time.perf_counter() - started
    peak = watch.result()
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("index version")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"fewshot rebuild failed: {log_path.read_text(errors='replace')[-3000:]}")
    return wall, peak, lines[-1]


# -- measurements over HTTP ---------------------------------------------------------------------------
def select_once(client: Any, prompt: str) -> float:
    started = time.perf_counter()
    response = client.post("/v1/select", json={"prompt": prompt, "k": K})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or len(response.json()["examples"]) != K:
        raise RuntimeError(f"/v1/select answered {response.status_code}: {response.text[:300]}")
    return elapsed


def select_latency(url: str, texts: Texts) -> list[float]:
    import httpx

    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        for prompt in texts.warmup:
            select_once(client, prompt)
        return [select_once(client, prompt) for prompt in texts.queries]


def against_langchain(url: str, texts: Texts, root: Path) -> tuple[list[float], list[float]]:
    """(/v1/select ms, LangChain ms) on the same queries, taking turns in blocks."""
    import httpx
    from select_latency import Bank, langchain_query

    from fewshot_service.embedding import SentenceTransformerEmbedder

    inputs, vectors = stored_embeddings(root)
    bank = Bank(ids=[str(n) for n in range(len(inputs))], questions=inputs, answers=[""] * len(inputs), vectors=vectors)
    langchain = langchain_query(SentenceTransformerEmbedder().model, bank, K)
    ours: list[float] = []
    theirs: list[float] = []
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        for prompt in texts.warmup:
            select_once(client, prompt)
            langchain(prompt)
        for block, start in enumerate(range(0, len(texts.queries), BLOCK)):
            chunk = texts.queries[start : start + BLOCK]
            turns = [("ours", ours), ("theirs", theirs)][:: 1 if block % 2 == 0 else -1]
            for name, sink in turns:
                for prompt in chunk:
                    if name == "ours":
                        sink.append(select_once(client, prompt))
                    else:
                        began = time.perf_counter()
                        if len(langchain(prompt)[0]) != K:
                            raise RuntimeError("LangChain returned fewer than k examples")
                        sink.append((time.perf_counter() - began) * 1000)
    return ours, theirs


def throughput(
    url: str | Sequence[str], prompts: Sequence[str], clients: int, warmup: Sequence[str]
) -> tuple[float, list[float]]:
    """(requests/s with `clients` concurrent clients sending every prompt once between them, each request's ms).

    Each client is one keep-alive HTTP/1.1 connection driven by asyncio in this process: the clients share the
    server's 2 cores, and threads running httpx cost about 1 ms of CPU a request, which the server would lose.
    Given several servers' URLs, the clients are dealt round-robin between them."""
    import asyncio
    from urllib.parse import urlsplit

    addresses = [urlsplit(url)] if isinstance(url, str) else [urlsplit(one) for one in url]
    share = len(prompts) // clients

    async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, prompt: str) -> float:
        body = json.dumps({"prompt": prompt, "k": K}).encode()
        head = f"POST /v1/select HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        started = time.perf_counter()
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, *headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:"))
        answer = json.loads(await reader.readexactly(length))
        elapsed = (time.perf_counter() - started) * 1000
        if " 200 " not in status or len(answer["examples"]) != K:
            raise RuntimeError(f"/v1/select answered {status}: {str(answer)[:300]}")
        return elapsed

    async def client_run(number: int, start: asyncio.Event, ready: list[int]) -> list[float]:
        address = addresses[number % len(addresses)]
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            await post(reader, writer, address.netloc, warmup[number % len(warmup)])  # connect; cached embeddings
            ready.append(number)
            await start.wait()
            mine = prompts[number * share : (number + 1) * share]
            return [await post(reader, writer, address.netloc, prompt) for prompt in mine]
        finally:
            writer.close()

    async def run_all() -> tuple[float, list[float]]:
        start, ready = asyncio.Event(), list[int]()
        tasks = [asyncio.create_task(client_run(n, start, ready)) for n in range(clients)]
        while len(ready) < clients:
            await asyncio.sleep(0.01)
        began = time.perf_counter()
        start.set()
        times = [ms for per_client in await asyncio.gather(*tasks) for ms in per_client]
        return len(times) / (time.perf_counter() - began), times

    return asyncio.run(run_all())


def ingest(url: str, bodies: Sequence[dict[str, Any]]) -> float:
    """Examples/s through POST /v1/examples, INGEST_BATCH per request."""
    import httpx

    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600, trust_env=False) as client:
        for start in range(0, len(bodies), INGEST_BATCH):
            response = client.post(
                "/v1/examples",
                params={"on_duplicate": "keep"},
                json={"examples": list(bodies[start : start + INGEST_BATCH])},
            )
            if response.status_code != 201:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
    return len(bodies) / (time.perf_counter() - started)


def encode_rate(embedder: Any, texts: Sequence[str]) -> tuple[float, int]:
    """(texts/s, batch size) of the fastest batch size: one embed() call over all texts, which sorts them by
    length so each batch pads little (sentence-transformers does; the ONNX embedder also cuts batches where
    padding would cost more than a call, so for it the size is a cap)."""
    default = embedder.batch_size
    embedder.embed(list(texts[:64]))
    best = (0.0, default)
    try:
        for batch in (8, 16, 32, 64):
            embedder.batch_size = batch
            started = time.perf_counter()
            embedder.embed(list(texts))
            best = max(best, (len(texts) / (time.perf_counter() - started), batch))
    finally:
        embedder.batch_size = default
    return best


# -- in-process index measurements --------------------------------------------------------------------
def exact_top(queries: np.ndarray, chunks: Iterator[np.ndarray], k: int = 10) -> np.ndarray:
    """Row numbers of the k best inner products per query, over vectors arriving in chunks."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    offset = 0
    for chunk in chunks:
        scores = queries @ chunk.T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + offset], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, 1)
        best_rows = np.take_along_axis(merged_rows, order, 1)
        offset += len(chunk)
    return best_rows


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(map(int, f)) & set(map(int, t))) / len(t) for f, t in zip(found, truth, strict=True)])
    )


@dataclass
class IndexReport:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # storage, bytes/vector, build s, recall
    filtered: list[tuple[str, int, float, float, float, float]] = field(default_factory=list)
    random: list[tuple[int, float, float]] = field(default_factory=list)  # nprobe, recall, ms


def slot_rows(root: Path, model_id: str) -> Iterator[Any]:
    from fewshot_service.bank import SqlBank

    bank = SqlBank(f"sqlite:///{root / 'data' / 'bank.sqlite3'}")
    try:
        yield from bank.iter_index_rows(model_id)
    finally:
        bank.close()


def measure_index(root: Path, query_vectors: np.ndarray, random_case: bool) -> IndexReport:
    """Recall of the served 1M index and of compact storage; filtered search; random vectors."""
    from fewshot_service.embedding import PACKAGED_MODEL_ID
    from fewshot_service.index import IndexOptions, IndexStore, VectorIndex
    from fewshot_service.models import SelectFilters

    report = IndexReport()
    store = IndexStore(root / "indexes")
    version = store.current_version()
    assert version is not None
    index, manifest = store.load(version)
    # Slot order is the bank's id order, as exact_top reads the stored vectors.
    log("exact top-10 of every query over the stored vectors")

    def chunks() -> Iterator[np.ndarray]:
        batch: list[np.ndarray] = []
        for row in slot_rows(root, PACKAGED_MODEL_ID):
            batch.append(row.embedding)
            if len(batch) == 50_000:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    truth = exact_top(query_vectors, chunks())
    everything = SelectFilters()

    def found_by(candidate: VectorIndex) -> list[np.ndarray]:
        return [candidate.search(q, 10, everything).slots for q in query_vectors]

    per_vector = {"float32": DIM * 4, "float16": DIM * 2, "sq8": DIM}
    report.rows.append(
        (
            "float32 (served)",
            str(per_vector["float32"]),
            f"{manifest.build_seconds:.1f}",
            f"{recall(found_by(index), truth):.3f}",
        )
    )
    filters = {1: ["t00"], 2: ["t00", "t01"], 5: [f"t{n:02d}" for n in range(5)], 20: [f"t{n:02d}" for n in range(20)]}
    for percent, topics in filters.items():
        chosen = SelectFilters(topics=topics)
        timings: dict[str, list[float]] = {"ann": [], "exact": []}
        results: dict[str, list[np.ndarray]] = {"ann": [], "exact": []}
        for path, share in (("exact", 1.0), ("ann", 0.0)):
            index.exact_share = share
            index.search(query_vectors[0], 24, chosen)  # the mask, built once per filter and cached
            for q in query_vectors:
                began = time.perf_counter()
                results[path].append(index.search(q, 24, chosen).slots[:10])
                timings[path].append((time.perf_counter() - began) * 1000)
        index.exact_share = VectorIndex.exact_share
        matching = int(len(index.slots) * percent / 100)
        report.filtered.append(
            (
                f"{percent}%",
                matching,
                percentile(timings["ann"], 50),
                percentile(timings["exact"], 50),
                recall(results["ann"], np.stack([r[:10] for r in results["exact"]])),
                percentile(timings["ann"], 99),
            )
        )
    del index
    for storage in ("float16", "sq8"):
        log(f"building a 1M IVF index with {storage} storage")
        began = time.perf_counter()
        compact = VectorIndex.build(
            DIM, slot_rows(root, PACKAGED_MODEL_ID), options=IndexOptions(storage=storage), expected=manifest.count
        )
        seconds = time.perf_counter() - began
        report.rows.append(
            (storage, str(per_vector[storage]), f"{seconds:.1f}", f"{recall(found_by(compact), truth):.3f}")
        )
        del compact
    if random_case:
        report.random = random_vectors_recall(manifest.count)
    return report


def random_vectors_recall(count: int) -> list[tuple[int, float, float]]:
    """The default IVF on `count` uniformly random unit vectors: recall@10 and ms per query at several nprobe."""
    import faiss

    from fewshot_service.index import IndexOptions
    from fewshot_service.index.kinds import create, training_size

    log(f"{count:,} uniformly random unit vectors: building the default IVF")
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((100, DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    options = IndexOptions()
    index = create(DIM, options, count)
    index.train(vectors[: training_size(options, count)])
    for start in range(0, count, 50_000):
        index.add(vectors[start : start + 50_000])
    truth = exact_top(queries, (vectors[s : s + 100_000] for s in range(0, count, 100_000)))
    del vectors
    rows = []
    for nprobe in (options.ivf_nprobe, 128, 512):
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        began = time.perf_counter()
        found = [index.search(q.reshape(1, -1), 10, params=params)[1][0] for q in queries]
        rows.append((nprobe, recall(found, truth), (time.perf_counter() - began) * 1000 / len(queries)))
    return rows


# -- the run ------------------------------------------------------------------------------------------
@dataclass
class SizeResult:
    size: int
    p50: float
    p99: float
    startup: float | None = None
    rebuild_s: float | None = None
    rebuild_rss: float | None = None
    server_rss: float | None = None
    kind: str = ""
    load: str = ""


@dataclass
class Run:
    encode_rate: float = 0.0  # the server's backend, on the query texts
    bank_encode_rate: float = 0.0  # the server's backend, on the texts ingested
    encode_batch: int = 0
    bank_encode_batch: int = 0
    reference_rate: float = 0.0  # sentence-transformers on PyTorch, on the query texts
    bank_reference_rate: float = 0.0  # the same, on the texts ingested
    reference_batch: int = 0
    bank_reference_batch: int = 0
    query_lengths: list[int] = field(default_factory=list)
    backend: str = ""
    model_rss: float = 0.0
    ingest_rate: float = 0.0
    throughput: float = 0.0
    throughput_p50: float = 0.0
    # The server backend's batched rate measured again just before and just after the 16-client pass: this
    # machine's speed drifts by up to a fifth over minutes, so the rate from the start of the run may not hold.
    encode_rate_around: tuple[float, float] = (0.0, 0.0)
    langchain_p50: float = 0.0
    langchain_p99: float = 0.0
    sizes: list[SizeResult] = field(default_factory=list)
    index: IndexReport | None = None
    started: float = field(default_factory=time.perf_counter)
    loads: list[str] = field(default_factory=list)


def ensure_real_bank(root: Path, bodies: Sequence[dict[str, Any]]) -> None:
    """root's bank: the real texts, imported and embedded once with `fewshot import` (kept for reruns)."""
    marker = root / f"real-{len(bodies)}.done"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    source = root / "bank.jsonl"
    source.write_text("".join(json.dumps(body, ensure_ascii=False) + "\n" for body in bodies), encoding="utf-8")
    log(f"{len(bodies):,}: importing and embedding the real texts (once; kept in {root})")
    # Batches of 16 embed these mixed-length texts about 1.5 x faster than the default 64 on 2 cores.
    env = {"FEWSHOT_EMBED_BATCH_SIZE": "16", **server_env(root)}
    subprocess.run([FEWSHOT, "import", "--restore", str(source)], env=env, check=True, capture_output=True)
    marker.write_text(json.dumps({"size": len(bodies)}))


def run_ingest(args: argparse.Namespace, texts: Texts, run: Run, root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with serving(root, args.port) as server:
        log(f"ingest: {args.ingest:,} examples through POST /v1/examples into an empty bank")
        run.ingest_rate = ingest(server.url, texts.bank[: args.ingest])


def run_10k(args: argparse.Namespace, texts: Texts, run: Run, root: Path, embedder: Any) -> None:
    """embedder: the server's backend in this process, whose batched rate is measured around the clients' pass."""
    ensure_real_bank(root, texts.bank)
    with serving(root, args.port) as server:
        run.backend = str(server.ready.get("embedding_backend"))
        log(f"{len(texts.bank):,}: /v1/select against LangChain")
        ours, theirs = against_langchain(server.url, texts, root)
        run.langchain_p50, run.langchain_p99 = percentile(theirs, 50), percentile(theirs, 99)
        result = SizeResult(len(texts.bank), percentile(ours, 50), percentile(ours, 99), load=load_average())
        log(f"{len(texts.bank):,}: {args.clients} concurrent clients")
        before, _ = encode_rate(embedder, texts.concurrent[: args.encode_texts])
        run.throughput, times = throughput(server.url, texts.concurrent, args.clients, texts.warmup)
        after, _ = encode_rate(embedder, texts.concurrent[: args.encode_texts])
        run.encode_rate_around = (before, after)
        run.throughput_p50 = percentile(times, 50)
    result.server_rss = server.peak_rss_mb
    result.startup = server.ready_seconds
    result.kind = "flat index, float32"
    run.sizes.append(result)


def run_synthetic(args: argparse.Namespace, texts: Texts, run: Run, root: Path, size: int) -> None:
    log(f"{size:,}: fewshot rebuild")
    wall, rss, line = rebuild(root)
    log(f"{size:,}: {line}")
    with serving(root, args.port) as server:
        if server.ready.get("examples") != size:
            raise RuntimeError(f"the server serves {server.ready.get('examples')} examples, expected {size}")
        log(f"{size:,}: ready in {server.ready_seconds:.1f}s; /v1/select one client")
        times = select_latency(server.url, texts)
    result = SizeResult(size, percentile(times, 50), percentile(times, 99), server.ready_seconds, wall, rss)
    result.server_rss = server.peak_rss_mb
    result.kind = line.split("(", 1)[1].split(")", 1)[0] if "(" in line else ""
    result.load = load_average()
    run.sizes.append(result)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(run: Run, args: argparse.Namespace) -> str:

    by_size = {result.size: result for result in run.sizes}
    small, large = by_size.get(args.bank_size), by_size.get(1_000_000)
    vectors_mb = 1_000_000 * DIM * 4 / 2**20
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {machine_info()}. Load average (1/5/15 min) through the run: {'; '.join(run.loads)}. The "
        "machine was shared with other test runs, so times are indicative.",
        f"Command: `{' '.join(['python', *sys.argv])}` ({(time.perf_counter() - run.started) / 60:.0f} min)",
        f"The model's own batched encode rate (sentence-transformers encode() on PyTorch, sorted by length, the "
        f"best of batch sizes 8, 16, 32, 64): **{run.reference_rate:.0f} texts/s** (batch {run.reference_batch}) "
        f"on {args.encode_texts} of the concurrent clients' prompts (mean {np.mean(run.query_lengths):.0f} "
        f"characters), **{run.bank_reference_rate:.0f} texts/s** (batch {run.bank_reference_batch}) on "
        f"{args.encode_texts} of the ingested bank texts. The server's backend ({run.backend}, batches cut by "
        f"length) in one embed() call: {run.encode_rate:.0f} texts/s (batch cap {run.encode_batch}) on the "
        f"prompts, {run.bank_encode_rate:.0f} (cap {run.bank_encode_batch}) on the bank texts. Model-only process "
        f"peak RSS: {run.model_rss:.0f} MiB. Vectors at 1M: {vectors_mb:.0f} MiB (float32).",
        "",
        "| bank | index | /v1/select p50 ms | p99 ms | start-up with index s | rebuild s | rebuild peak RSS MiB "
        "| server peak RSS MiB | load at end |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in run.sizes:
        lines.append(
            f"| {result.size:,} | {result.kind} | {result.p50:.1f} | {result.p99:.1f} | "
            f"{'' if result.startup is None else f'{result.startup:.1f}'} | "
            f"{'' if result.rebuild_s is None else f'{result.rebuild_s:.1f}'} | "
            f"{'' if result.rebuild_rss is None else f'{result.rebuild_rss:.0f}'} | "
            f"{'' if result.server_rss is None else f'{result.server_rss:.0f}'} | {result.load} |"
        )
    lines += ["", "| check | measured | target | verdict |", "| --- | --- | --- | --- |"]
    if small is not None:
        lines.append(
            f"| p50 at 10k vs LangChain SemanticSimilarityExampleSelector ({run.langchain_p50:.1f} ms, p99 "
            f"{run.langchain_p99:.1f}) | {small.p50 / run.langchain_p50:.2f} x | <= 0.7 x | "
            f"{verdict(small.p50 <= 0.7 * run.langchain_p50)} |"
        )
        lines.append(
            f"| {args.clients} concurrent clients, {args.concurrent_requests} distinct prompts (p50 "
            f"{run.throughput_p50:.0f} ms) | {run.throughput:.0f} req/s = "
            f"{run.throughput / run.reference_rate:.2f} x the model's encode rate "
            f"({run.throughput / run.encode_rate:.2f} x the server backend's) | >= 0.8 x | "
            f"{verdict(run.throughput >= 0.8 * run.reference_rate)} |"
        )
        before, after = run.encode_rate_around
        around = (before + after) / 2
        lines.append(
            f"| the same pass against the server backend's batched rate measured just before and after it "
            f"({before:.0f} and {after:.0f} texts/s) | {run.throughput / around:.2f} x their mean | "
            f">= 0.8 x (issue 19) | {verdict(run.throughput >= 0.8 * around)} |"
        )
        lines.append(
            f"| ingest via POST /v1/examples ({args.ingest} examples, {INGEST_BATCH} per request, empty bank) | "
            f"{run.ingest_rate:.0f} examples/s = {run.ingest_rate / run.bank_reference_rate:.2f} x the model's "
            f"encode rate ({run.ingest_rate / run.bank_encode_rate:.2f} x the server backend's) | "
            f">= 0.8 x | {verdict(run.ingest_rate >= 0.8 * run.bank_reference_rate)} |"
        )
    if small is not None and large is not None:
        lines.append(
            f"| p50 at 1M vs p50 at 10k | {large.p50 / small.p50:.2f} x | <= 1.5 x | "
            f"{verdict(large.p50 <= 1.5 * small.p50)} |"
        )
    if large is not None and large.rebuild_s is not None and large.rebuild_rss is not None:
        budget = 1.3 * (vectors_mb + run.model_rss)
        lines.append(
            f"| rebuild of 1M from stored embeddings | {large.rebuild_s:.0f} s | <= 120 s | "
            f"{verdict(large.rebuild_s <= 120)} |"
        )
        lines.append(
            f"| rebuild peak RSS | {large.rebuild_rss:.0f} MiB = "
            f"{large.rebuild_rss / (vectors_mb + run.model_rss):.2f} x "
            f"(vectors + model) | <= 1.3 x ({budget:.0f} MiB) | {verdict(large.rebuild_rss <= budget)} |"
        )
    hundred = by_size.get(100_000)
    if hundred is not None and hundred.startup is not None:
        lines.append(
            f"| start-up with an existing index, 100k | {hundred.startup:.1f} s | <= 10 s | "
            f"{verdict(hundred.startup <= 10)} |"
        )
    if run.index is not None:
        from fewshot_service.index.vector_index import EXACT_SHARE

        large_size = max(result.size for result in run.sizes)
        served = run.index.rows[0]
        lines.append(
            f"| recall@10 against exact search at 1M | {served[3]} | >= 0.95 | {verdict(float(served[3]) >= 0.95)} |"
        )
        lines += [
            "",
            "Storage at 1M (synthetic vectors; recall@10 against exact search over the stored float32 vectors):",
            "",
            "| storage | bytes per vector | build s | recall@10 |",
            "| --- | --- | --- | --- |",
            *[f"| {name} | {size} | {seconds} | {value} |" for name, size, seconds, value in run.index.rows],
            "",
            "Filtered search at 1M (k=24 candidates as /v1/select asks for k=4; topics drawn uniformly, so a "
            "filter keeps that share of the bank; ms per search in process, the filter's mask cached):",
            "",
            "| filter keeps | slots | approximate p50 ms | exact scan p50 ms | approximate recall@10 vs exact "
            f"| approximate p99 ms | path taken (exact up to {EXACT_SHARE:.0%}) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *[
                f"| {name} | {slots:,} | {ann:.2f} | {exact:.2f} | {rec:.3f} | {p99:.2f} | "
                f"{'exact' if slots <= EXACT_SHARE * large_size else 'approximate'} |"
                for name, slots, ann, exact, rec, p99 in run.index.filtered
            ],
        ]  # fmt: skip
        if run.index.random:
            lines += [
                "",
                "The same IVF (2·√n lists) on 1M uniformly random unit vectors, the hard case (no neighbourhood "
                "structure):",
                "",
                "| nprobe | recall@10 | ms per query |",
                "| --- | --- | --- |",
                *[f"| {nprobe} | {rec:.3f} | {ms:.2f} |" for nprobe, rec, ms in run.index.random],
            ]
    return "\n".join(lines)


def record(text: str, path: Path = RESULTS) -> None:
    record_section(text, SECTION, path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder holding mmlu/, banking77/ and arc/.")
    parser.add_argument("--work-dir", type=Path, default=REPO / "benchmarks" / ".cache" / "scale")
    parser.add_argument("--queries", type=int, default=200, help="Timed queries per bank size.")
    parser.add_argument("--bank-size", type=int, default=10_000, help="Real texts in the end-to-end bank.")
    parser.add_argument("--sizes", default="100000,1000000", help="Synthetic bank sizes, comma-separated.")
    parser.add_argument("--ingest", type=int, default=2000, help="Examples ingested through the API (timed).")
    parser.add_argument("--encode-texts", type=int, default=400, help="Texts per encode-rate measurement.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--concurrent-requests", type=int, default=960, help="Distinct prompts, each sent once.")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-index-analysis", action="store_true", help="Skip step 4 (in-process recall etc.).")
    parser.add_argument("--no-random", action="store_true", help="Skip the random-vector recall.")
    parser.add_argument("--no-record", action="store_true", help="Do not append to benchmarks/RESULTS.md.")
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="FEWSHOT_NAME=VALUE",
        help="A setting for the servers and commands this run starts (repeatable), e.g. FEWSHOT_EMBED_BATCH_SIZE=8.",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for setting in args.server_setting:
        name, _, value = setting.partition("=")
        if not name.startswith("FEWSHOT_") or not _:
            raise SystemExit(f"--server-setting wants FEWSHOT_NAME=VALUE, not {setting!r}")
        SERVER_SETTINGS[name] = value
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    run = Run()
    run.loads.append(f"{load_average()} at the start")
    texts = load_texts(args.data, args.bank_size, args.queries, args.seed, args.concurrent_requests)
    log("model: batched encode rate and model-only RSS")
    embedder = load_server_embedder()
    run.encode_rate, run.encode_batch = encode_rate(embedder, texts.concurrent[: args.encode_texts])
    run.query_lengths = [len(query) for query in texts.concurrent]
    ingested = [body["input"] for body in texts.bank[: args.ingest]]
    run.bank_encode_rate, run.bank_encode_batch = encode_rate(embedder, ingested[: args.encode_texts])
    from fewshot_service.embedding import SentenceTransformerEmbedder

    reference = SentenceTransformerEmbedder()
    run.reference_rate, run.reference_batch = encode_rate(reference, texts.concurrent[: args.encode_texts])
    run.bank_reference_rate, run.bank_reference_batch = encode_rate(reference, ingested[: args.encode_texts])
    del reference
    run.model_rss = model_only_rss_mb()
    log(
        f"encode rate {run.reference_rate:.0f} / {run.bank_reference_rate:.0f} texts/s (sentence-transformers), "
        f"{run.encode_rate:.0f} / {run.bank_encode_rate:.0f} (server backend) on the queries / bank texts "
        f"({getattr(embedder, 'backend', '?')}); model RSS {run.model_rss:.0f} MiB"
    )

    run_ingest(args, texts, run, work / "ingest")
    real = work / f"{args.bank_size // 1000}k"
    run_10k(args, texts, run, real, embedder)
    run.loads.append(f"{load_average()} after 10k")
    inputs, centres = stored_embeddings(real)
    base: Path | None = None
    for size in sorted(int(s) for s in args.sizes.split(",") if s):
        root = work / f"{size // 1000}k"
        ensure_synthetic_bank(root, size, base, centres, inputs)
        run_synthetic(args, texts, run, root, size)
        run.loads.append(f"{load_average()} after {size:,}")
        base = root
    if base is not None and not args.no_index_analysis:
        query_vectors = embedder.embed(texts.queries)
        run.index = measure_index(base, query_vectors, not args.no_random)
        run.loads.append(f"{load_average()} after the index analysis")
    text = report(run, args)
    print("\n" + text + "\n")
    if not args.no_record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
