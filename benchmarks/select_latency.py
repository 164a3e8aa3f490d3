"""Latency of POST /v1/select on GSM8K, against the floor and against LangChain (issue 2).

What it measures, in one process run and on the same test questions (the first --queries of GSM8K's
test split) against a bank of all 7,473 GSM8K train questions:

(a) the floor: in-process query embedding with sentence-transformers (the same all-MiniLM-L6-v2 model,
    as an application embedding its own prompts would) plus an exact ``faiss.IndexFlatIP`` search over the
    bank's stored embeddings, k nearest; and, for the service's own overhead, the same floor with the
    server's embedding backend (ONNX Runtime, the same checked export the server loads);
(b) ``POST /v1/select`` over HTTP against a ``fewshot serve`` subprocess on 127.0.0.1, one persistent
    ``httpx.Client``, client-side wall time per request; the default strategy (stratified) and knn;
(c) LangChain's ``SemanticSimilarityExampleSelector`` over ``langchain_community.vectorstores.FAISS``
    with the same model; the store is built from the bank's precomputed embeddings
    (``FAISS.from_embeddings``, so the bank is not embedded twice); the timed part is ``select_examples``;
(d) ``GET /healthz`` through the same client, back to back and after --idle-ms of idling (client and server
    sleep while a select's prompt is embedded; waking them costs time the in-process floors never pay).

Queries run one at a time, as requests would. Every method times every query in each of two rounds; within
a round the methods take turns in blocks of 25 queries (rotating order), so drift in machine speed hits
them alike, and each block starts with a few warm-up queries from outside the timed set. On a shared
machine, blocks during which other processes took much CPU (read from /proc) are repeated. Each method's
best round (lowest p50) gives the ratios checked against the targets (issue 19): /v1/select p50 (default
strategy) <= 1.15 x the floor with the server's own backend and <= 0.7 x LangChain's; the exit status is 1
when they are missed. /v1/select is timed with and without `fields` (input and output only), for the
default strategy and knn.

Run (needs the bench extra: ``pip install -e '.[bench]'``)::

    .venv/bin/python benchmarks/select_latency.py --data ../shared/datasets/gsm8k \\
        --work-dir benchmarks/.cache/gsm8k

The bank is built with ``fewshot import`` into --work-dir (a temporary folder if omitted); import is
idempotent and embeddings are stored in the bank, so a rerun with the same --work-dir skips the minute
of embedding. The result table is printed and appended to benchmarks/RESULTS.md (``--no-record`` skips that).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from harness import (  # benchmarks/ is on the path when a script runs
    ensure_port_free,
    launched,
    machine_info,
    percentile,
    record_section,
    run_command,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## /v1/select latency on GSM8K (issue 2)"
# Issue 19: the service's own floor is the same work in-process with the server's backend (ONNX Runtime
# embedding + exact FAISS); sentence-transformers' floor is reported beside it.
TARGET_VS_BACKEND_FLOOR = 1.15
TARGET_VS_LANGCHAIN = 0.7
READY_TIMEOUT_S = 600.0
LANGCHAIN_PACKAGES = ("langchain-core", "langchain-community")

FLOOR = "floor: sentence-transformers embed + exact FAISS (in-process)"
FLOOR_BACKEND = "floor with the server's backend: ONNX Runtime embed + exact FAISS (in-process)"
SELECT_DEFAULT = "/v1/select default strategy, HTTP"
SELECT_DEFAULT_FIELDS = "/v1/select default strategy, fields input+output, HTTP"
SELECT_KNN = "/v1/select knn, HTTP"
SELECT_KNN_FIELDS = "/v1/select knn, fields input+output, HTTP"
SELECTS = (SELECT_DEFAULT, SELECT_DEFAULT_FIELDS, SELECT_KNN, SELECT_KNN_FIELDS)
LANGCHAIN = "LangChain SemanticSimilarityExampleSelector + FAISS"
# The HTTP part alone: the same client, server and middleware, a route that does nothing.
HEALTHZ = "HTTP round trip alone: GET /healthz, same client and server"
# The same round trip when client and server have just been idle for about an embedding's length, as they are
# in a select (both sleep while the model runs). On a virtual machine waking an idle thread costs time of its
# own; this row shows how much of a select's HTTP share is that, not the framework.
HEALTHZ_AFTER_IDLE = "HTTP round trip after idling: GET /healthz, timed after a pause"

# A query function returns the ids it selected and, for HTTP calls, the server's own took_ms.
QueryFn = Callable[[str], tuple[list[str], float | None]]


# -- data and bank ------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def final_answer(answer: str) -> str:
    """GSM8K answers end with '#### <number>'."""
    return answer.rsplit("####", 1)[-1].strip()


def external_id(number: int) -> str:
    return f"gsm8k-train-{number:05d}"


def write_bank_file(train: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for number, row in enumerate(train):
            record = {
                "external_id": external_id(number),
                "input": row["question"],
                "output": final_answer(row["answer"]),
                "topic": "gsm8k",
                "difficulty": None,
                "tags": ["gsm8k"],
                "source": "imported",
                "status": "approved",
                "metadata": {"split": "train", "line": number + 1},
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def service_env(work_dir: Path) -> dict[str, str]:
    """The environment for `fewshot` subprocesses: only our bank and index, nothing downloaded."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FEWSHOT_")}
    env.update(
        FEWSHOT_DATA_DIR=str(work_dir / "data"),
        FEWSHOT_INDEX_DIR=str(work_dir / "indexes"),
        FEWSHOT_SEED_ON_EMPTY="false",
        # Every query is timed in both rounds and by both strategies: with the prompt cache on, all but the first
        # would skip embedding. Off, each request pays for its embedding, as a new prompt does.
        FEWSHOT_QUERY_CACHE_SIZE="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


# The same command functions the CLI runs, called without typer's argument parsing: the fallback for
# when the `fewshot` CLI itself cannot start.
_DIRECT_IMPORT = (
    "import sys; from pathlib import Path; from fewshot_service.cli.main import import_; "
    "import_(Path(sys.argv[1]), status=None, strict=False, embed=True, restore=True)"
)
_DIRECT_SERVE = "import sys; from fewshot_service.cli.main import serve; serve(host=sys.argv[1], port=int(sys.argv[2]))"


@dataclass(frozen=True)
class Launcher:
    """Builds `fewshot import` / `fewshot serve` command lines for this interpreter's environment."""

    cli_works: bool
    problem: str = ""

    @classmethod
    def probe(cls, env: dict[str, str]) -> Launcher:
        probe = subprocess.run(
            [sys.executable, "-m", "fewshot_service.cli", "--help"], env=env, capture_output=True, text=True
        )
        if probe.returncode == 0:
            return cls(True)
        lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
        problem = lines[-1] if lines else f"exit status {probe.returncode}"
        print(f"WARNING: the fewshot CLI does not start ({problem}); calling its command functions directly")
        return cls(False, problem)

    def import_command(self, path: Path) -> list[str]:
        if self.cli_works:
            return [sys.executable, "-m", "fewshot_service.cli", "import", "--restore", str(path)]
        return [sys.executable, "-c", _DIRECT_IMPORT, str(path)]

    def serve_command(self, port: int) -> list[str]:
        if self.cli_works:
            return [
                sys.executable,
                "-m",
                "fewshot_service.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
        return [sys.executable, "-c", _DIRECT_SERVE, "127.0.0.1", str(port)]

    def describe(self) -> str:
        if self.cli_works:
            return "Bank built with `fewshot import`, server started with `fewshot serve`."
        return (
            f"The `fewshot` CLI failed to start ({self.problem}), so the bank and server were run by calling "
            "fewshot_service.cli.main.import_() and serve() directly (same code, without typer's parsing)."
        )


def import_bank(train: Sequence[dict[str, Any]], work_dir: Path, launcher: Launcher) -> None:
    bank_file = work_dir / "gsm8k_train.jsonl"
    write_bank_file(train, bank_file)
    started = time.perf_counter()
    print(f"importing {len(train)} train questions into {work_dir} (embeds what is not embedded yet) ...", flush=True)
    try:
        subprocess.run(launcher.import_command(bank_file), env=service_env(work_dir), check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"the import failed (exit status {exc.returncode}); if the bank's schema changed since {work_dir} "
            "was built, delete that folder and run again"
        ) from exc
    print(f"import done in {time.perf_counter() - started:.1f}s", flush=True)


@dataclass(frozen=True)
class Bank:
    """The bank's examples in one fixed order, with their stored embeddings."""

    ids: list[str]
    questions: list[str]
    answers: list[str]
    vectors: np.ndarray  # (n, dim) float32, L2-normalised


def load_bank(work_dir: Path, model_id: str) -> Bank:
    from fewshot_service.bank import SqlBank
    from fewshot_service.settings import Settings

    settings = Settings(data_dir=work_dir / "data", index_dir=work_dir / "indexes")
    bank = SqlBank(settings.resolved_database_url())
    try:
        texts = {example.id: (example.input, example.output) for example in bank.iter_examples()}
        rows = list(bank.iter_index_rows(model_id))
    finally:
        bank.close()
    ids = [row.id for row in rows]
    return Bank(
        ids=ids,
        questions=[texts[i][0] for i in ids],
        answers=[texts[i][1] for i in ids],
        vectors=np.ascontiguousarray(np.stack([row.embedding for row in rows]), dtype=np.float32),
    )


# -- the three contenders -----------------------------------------------------------------------------
def floor_query(embed: Callable[[list[str]], np.ndarray], bank: Bank, k: int) -> QueryFn:
    """Embed the query in-process, then an exact inner-product search."""
    import faiss

    index = faiss.IndexFlatIP(bank.vectors.shape[1])
    index.add(bank.vectors)

    def run(question: str) -> tuple[list[str], float | None]:
        vector = embed([question])
        _, slots = index.search(np.ascontiguousarray(vector, dtype=np.float32), k)
        return [bank.ids[int(s)] for s in slots[0] if s >= 0], None

    return run


def reference_embed(model: Any) -> Callable[[list[str]], np.ndarray]:
    """sentence-transformers' encode, as an application embedding its own prompts would call it."""

    def embed(texts: list[str]) -> np.ndarray:
        vectors: np.ndarray = model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors

    return embed


def langchain_query(model: Any, bank: Bank, k: int) -> QueryFn:
    """SemanticSimilarityExampleSelector over LangChain's FAISS store (its defaults: IndexFlatL2)."""
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ["LANGCHAIN_TRACING_V2"] = "false"
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import Embeddings
        from langchain_core.example_selectors import SemanticSimilarityExampleSelector
    except ImportError as exc:
        raise SystemExit(f"LangChain is missing ({exc}); install the bench extra: pip install -e '.[bench]'") from exc

    class SentenceTransformerEmbeddings(Embeddings):
        """The same SentenceTransformer, normalised as the service's embeddings are."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            return [list(map(float, row)) for row in vectors]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    store = FAISS.from_embeddings(
        text_embeddings=list(zip(bank.questions, bank.vectors.tolist(), strict=True)),
        embedding=SentenceTransformerEmbeddings(),
        metadatas=[
            {"id": i, "question": q, "answer": a}
            for i, q, a in zip(bank.ids, bank.questions, bank.answers, strict=True)
        ],
        ids=bank.ids,
    )
    selector = SemanticSimilarityExampleSelector(vectorstore=store, k=k, input_keys=["question"])

    def run(question: str) -> tuple[list[str], float | None]:
        return [example["id"] for example in selector.select_examples({"question": question})], None

    return run


def http_query(client: Any, k: int, strategy: str | None, fields: list[str] | None = None) -> QueryFn:
    """One POST /v1/select; strategy None sends none, so the server's default (read from the same settings
    the server reads) applies, and each response is checked to have used it. With fields, only those of
    each example are asked for (and the id, which always comes)."""
    from fewshot_service.settings import Settings

    body_base: dict[str, Any] = {"k": k} if strategy is None else {"k": k, "strategy": strategy}
    if fields is not None:
        body_base["fields"] = fields
    expected = strategy or Settings().default_strategy

    def run(question: str) -> tuple[list[str], float | None]:
        response = client.post("/v1/select", json={"prompt": question, **body_base})
        response.raise_for_status()
        payload = response.json()
        if payload["strategy"] != expected:
            raise RuntimeError(f"asked for {expected}, the server used {payload['strategy']}")
        return [example["id"] for example in payload["examples"]], float(payload["took_ms"])

    return run


def healthz_query(client: Any, pause_s: float = 0.0) -> QueryFn:
    """GET /healthz; with pause_s, time_block sleeps that long before timing each call (outside the timing)."""

    def run(_: str) -> tuple[list[str], float | None]:
        client.get("/healthz").raise_for_status()
        return [], None

    run.pause_s = pause_s  # type: ignore[attr-defined]
    return run


# -- the server ---------------------------------------------------------------------------------------
@contextmanager
def running_server(work_dir: Path, port: int, launcher: Launcher) -> Iterator[subprocess.Popen[bytes]]:
    """`fewshot serve` on 127.0.0.1:port, its output in work_dir/server.log; always stopped on exit."""
    ensure_port_free(port)
    with launched(launcher.serve_command(port), service_env(work_dir), work_dir / "server.log") as process:
        yield process


# -- timing -------------------------------------------------------------------------------------------
class CpuMeter:
    """How busy the machine is with other processes' work (Linux /proc): our process and the server excluded.

    The share is of all cores over a time window, from 0 (only we ran) to 1 (others used every core).
    """

    def __init__(self, own_pids: Sequence[int], threshold: float, wait: float, wait_budget: float) -> None:
        """threshold: the share under which the machine counts as quiet; wait: the longest wait for quiet
        at one time; wait_budget: the total waiting allowed in a run, after which blocks run regardless."""
        self.own_pids = [os.getpid(), *own_pids]
        self.tick = float(os.sysconf("SC_CLK_TCK"))
        self.cores = os.cpu_count() or 1
        self.threshold = threshold
        self.wait = wait
        self.budget_left = wait_budget

    def quiet(self, share: float) -> bool:
        return not share >= self.threshold  # nan (unknown) counts as quiet

    def _sample(self) -> tuple[float, float, float]:
        """(wall seconds, machine busy cpu-seconds, our processes' cpu-seconds)."""
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = sum(values) - values[3] - values[4]  # all but idle and iowait
        ours = 0
        for pid in self.own_pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += int(fields[11]) + int(fields[12])  # utime + stime, all threads
        return time.monotonic(), busy / self.tick, ours / self.tick

    @contextmanager
    def window(self) -> Iterator[list[float]]:
        """Yields a list that holds the foreign share of the window once it closes (nan if unknown)."""
        share: list[float] = []
        try:
            before = self._sample()
        except (OSError, ValueError, IndexError):
            before = None
        yield share
        try:
            after = self._sample()
        except (OSError, ValueError, IndexError):
            after = None
        if before is None or after is None or after[0] <= before[0]:
            share.append(float("nan"))
            return
        foreign = (after[1] - before[1]) - (after[2] - before[2])
        share.append(max(0.0, foreign) / ((after[0] - before[0]) * self.cores))

    def wait_quiet(self) -> None:
        """Sleep in 1 s windows until other processes use under the threshold, within the waiting limits."""
        deadline = time.monotonic() + min(self.wait, self.budget_left)
        announced = False
        while time.monotonic() < deadline:
            started = time.monotonic()
            with self.window() as share:
                time.sleep(1.0)
            self.budget_left -= time.monotonic() - started
            if self.quiet(share[0]):
                return
            if not announced:
                print(
                    f"  other processes use {share[0]:.0%} of the CPU; waiting (up to {self.wait:.0f}s now, "
                    f"{max(self.budget_left, 0):.0f}s left in this run) ...",
                    flush=True,
                )
                announced = True


@dataclass
class Measurement:
    """One method's timings, per round: client-side ms per query, the server's took_ms if any, and how much
    of the machine other processes used during the block."""

    rounds: list[np.ndarray] = field(default_factory=list)
    server_rounds: list[np.ndarray] = field(default_factory=list)
    other_load: list[float] = field(default_factory=list)
    selected: list[list[str]] = field(default_factory=list)

    def best_round(self) -> int:
        return int(np.argmin([percentile(r, 50) for r in self.rounds]))


def time_block(
    run: QueryFn, queries: Sequence[str], warmup: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    for question in warmup:
        run(question)
    client_ms = np.empty(len(queries))
    server_ms = np.full(len(queries), np.nan)
    selected: list[list[str]] = []
    pause_s = getattr(run, "pause_s", 0.0)
    for n, question in enumerate(queries):
        if pause_s:
            time.sleep(pause_s)
        started = time.perf_counter_ns()
        ids, took_ms = run(question)
        client_ms[n] = (time.perf_counter_ns() - started) / 1e6
        if took_ms is not None:
            server_ms[n] = took_ms
        selected.append(ids)
    return client_ms, server_ms, selected


def measure(
    runners: dict[str, QueryFn],
    queries: Sequence[str],
    warmup: Sequence[str],
    args: argparse.Namespace,
    meter: CpuMeter,
) -> dict[str, Measurement]:
    """Every round times every method on every query, interleaved in chunks of --chunk queries: chunk by
    chunk, each method in turn (the order rotates per chunk and is reversed in odd rounds), so slow drift
    in machine speed hits all methods alike."""
    results = {name: Measurement() for name in runners}
    spans = [range(start, min(start + args.chunk, len(queries))) for start in range(0, len(queries), args.chunk)]
    for number in range(args.rounds):
        names = list(runners) if number % 2 == 0 else list(reversed(runners))
        client = {name: np.empty(len(queries)) for name in names}
        server = {name: np.full(len(queries), np.nan) for name in names}
        selected: dict[str, list[list[str]]] = {name: [] for name in names}
        loads: dict[str, list[float]] = {name: [] for name in names}
        meter.wait_quiet()
        for name in names:
            time_block(runners[name], [], warmup[: args.warmup])
        for position, span in enumerate(spans):
            chunk = [queries[i] for i in span]
            chunk_warmup = [warmup[(position + j) % len(warmup)] for j in range(args.chunk_warmup)] if warmup else []
            shift = position % len(names)
            for name in names[shift:] + names[:shift]:
                client_ms, server_ms, ids, other = quiet_block(runners[name], chunk, chunk_warmup, args, meter)
                client[name][span.start : span.stop] = client_ms
                server[name][span.start : span.stop] = server_ms
                selected[name].extend(ids)
                loads[name].append(other)
        for name in runners:
            result = results[name]
            result.rounds.append(client[name])
            result.server_rounds.append(server[name])
            result.other_load.append(float(np.nanmean(loads[name])) if not np.isnan(loads[name]).all() else np.nan)
            result.selected = selected[name]
            p50, p99 = percentile(client[name], 50), percentile(client[name], 99)
            share = result.other_load[-1]
            print(
                f"round {number + 1}: {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms (others' CPU {share:.0%})", flush=True
            )
    return results


def quiet_block(
    run: QueryFn, queries: Sequence[str], warmup: Sequence[str], args: argparse.Namespace, meter: CpuMeter
) -> tuple[np.ndarray, np.ndarray, list[list[str]], float]:
    """A timed block, repeated (up to --block-attempts, after waiting for calm) while other processes took
    over --quiet-below of the CPU during it; the quietest attempt is kept."""
    best: tuple[np.ndarray, np.ndarray, list[list[str]], float] | None = None
    for attempt in range(1, args.block_attempts + 1):
        with meter.window() as other:
            client_ms, server_ms, selected = time_block(run, queries, warmup)
        if best is None or not other[0] >= best[3]:
            best = (client_ms, server_ms, selected, other[0])
        if meter.quiet(other[0]) or meter.budget_left <= 0:
            break
        if attempt < args.block_attempts:
            print(f"  other processes took {other[0]:.0%} of the CPU during a block; repeating it", flush=True)
            meter.wait_quiet()
    assert best is not None
    return best


# -- report -------------------------------------------------------------------------------------------
def agreement(results: dict[str, Measurement], name: str) -> float:
    """Share of queries whose selected id set equals the floor's (exact top-k)."""
    floor = results[FLOOR].selected
    same = sum(set(a) == set(b) for a, b in zip(floor, results[name].selected, strict=True))
    return same / len(floor)


def latency_table(results: dict[str, Measurement], rounds: int) -> str:
    head = ["Method"]
    for number in range(1, rounds + 1):
        head += [f"r{number} p50", f"r{number} p99"]
    head += ["best p50", "best p99", "server took_ms p50 / p99", "others' CPU per round", "same top-k as floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, result in results.items():
        cells = [name]
        for series in result.rounds:
            cells += [f"{percentile(series, 50):.2f}", f"{percentile(series, 99):.2f}"]
        best = result.best_round()
        cells += [f"**{percentile(result.rounds[best], 50):.2f}**", f"{percentile(result.rounds[best], 99):.2f}"]
        server = result.server_rounds[best]
        has_server = not np.isnan(server).all()
        cells.append(f"{percentile(server, 50):.2f} / {percentile(server, 99):.2f}" if has_server else "-")
        cells.append(" / ".join(f"{share:.0%}" for share in result.other_load))
        cells.append("-" if name in (FLOOR, HEALTHZ, HEALTHZ_AFTER_IDLE) else f"{agreement(results, name):.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(results: dict[str, Measurement], rounds: int) -> tuple[str, bool]:
    """Ratios of p50s per round and of best rounds; the verdict uses the best rounds, the default strategy."""

    def p50(name: str, number: int | None) -> float:
        result = results[name]
        return percentile(result.rounds[result.best_round() if number is None else number], 50)

    head = ["Ratio (p50)", *[f"round {n}" for n in range(1, rounds + 1)], "best rounds", "target", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    passed = True
    others = (
        (FLOOR_BACKEND, "floor with the server's backend", TARGET_VS_BACKEND_FLOOR),
        (LANGCHAIN, "LangChain", TARGET_VS_LANGCHAIN),
        (FLOOR, "sentence-transformers floor", None),
    )
    for select in SELECTS:
        for other, other_label, target in others:
            per_round = [p50(select, n) / p50(other, n) for n in range(rounds)]
            best = p50(select, None) / p50(other, None)
            label = f"{select.removesuffix(', HTTP')} / {other_label}"
            if target is None:
                cells = [label, *[f"{r:.3f}" for r in per_round], f"**{best:.3f}**", "-", "(informational)"]
                lines.append("| " + " | ".join(cells) + " |")
                continue
            ok = best <= target
            if select == SELECT_DEFAULT:
                passed = passed and ok
                verdict = "PASS" if ok else "FAIL"
            else:
                verdict = f"({'pass' if ok else 'miss'}, informational)"
            cells = [label, *[f"{r:.3f}" for r in per_round], f"**{best:.3f}**", f"<= {target:.2f}", verdict]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), passed


def overhead_note(results: dict[str, Measurement], args: argparse.Namespace) -> str:
    """Where /v1/select's time goes: server-side (took_ms) vs HTTP, and server-side beyond the floor."""
    lines: list[str] = []
    floor = percentile(results[FLOOR_BACKEND].rounds[results[FLOOR_BACKEND].best_round()], 50)
    round_trip = percentile(results[HEALTHZ].rounds[results[HEALTHZ].best_round()], 50)
    lines.append(
        f"- the HTTP round trip alone (GET /healthz, same client, server and middleware): p50 {round_trip:.2f} ms"
    )
    if HEALTHZ_AFTER_IDLE in results:
        after_idle = percentile(results[HEALTHZ_AFTER_IDLE].rounds[results[HEALTHZ_AFTER_IDLE].best_round()], 50)
        lines.append(
            f"- the same round trip when client and server were idle for {args.idle_ms:g} ms before it, as they "
            f"are while a select's prompt is embedded: p50 {after_idle:.2f} ms ({after_idle - round_trip:+.2f} ms "
            "of waking up)"
        )
    for name in SELECTS:
        result = results[name]
        best = result.best_round()
        client = result.rounds[best]
        server = result.server_rounds[best]
        lines.append(
            f"- {name}: client p50 {percentile(client, 50):.2f} ms = server took_ms p50 "
            f"{percentile(server, 50):.2f} ms + HTTP/framework p50 {percentile(client - server, 50):.2f} ms; "
            f"server-side beyond the same-backend floor's p50 ({floor:.2f} ms): "
            f"{percentile(server, 50) - floor:+.2f} ms"
        )
    return "\n".join(lines)


def report(results: dict[str, Measurement], args: argparse.Namespace, bank_size: int, setup: str) -> tuple[str, bool]:
    latency = latency_table(results, args.rounds)
    ratios, passed = ratio_table(results, args.rounds)
    date = run_command("date", "-u") or datetime.now(UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    text = "\n\n".join(
        [
            f"### {date}",
            f"Machine: {machine_info(('langchain-core', 'langchain-community'))}",
            f"Command: `{' '.join(['python', *sys.argv])}`",
            *([f"Note: {args.note}"] if args.note else []),
            f"Workload: the first {args.queries} GSM8K test questions, one at a time, against a bank of {bank_size} "
            f"GSM8K train questions, k={args.k}; times in ms, client-side wall time. {args.rounds} rounds; in "
            f"each, the methods take turns in blocks of {args.chunk} queries (rotating order, reversed in odd "
            f"rounds), {args.warmup} warm-up queries per method per round and {args.chunk_warmup} before every "
            f"block. A block that other processes disturbed (over {args.quiet_below:.0%} of the CPU; the "
            f"'others' CPU' column is their mean share) was repeated up to {args.block_attempts} times, keeping "
            f"the quietest. {setup}",
            latency,
            ratios,
            overhead_note(results, args),
            f"Targets (/v1/select default strategy, best rounds): p50 <= {TARGET_VS_BACKEND_FLOOR} x the floor "
            f"with the server's backend and <= {TARGET_VS_LANGCHAIN} x LangChain: **{'PASS' if passed else 'FAIL'}**",
        ]
    )
    return text, passed


def record(text: str, path: Path = RESULTS) -> None:
    record_section(text, SECTION, path)


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="GSM8K folder with train.jsonl and test.jsonl.")
    parser.add_argument("--queries", type=int, default=300, help="How many test questions to time (the first N).")
    parser.add_argument("--k", type=int, default=4, help="Examples per query.")
    parser.add_argument("--port", type=int, default=8765, help="Port for the server on 127.0.0.1.")
    parser.add_argument("--work-dir", type=Path, help="Bank, index and server log; kept for reruns (default temp).")
    parser.add_argument("--rounds", type=int, default=2, help="Measurement rounds per method.")
    parser.add_argument("--warmup", type=int, default=20, help="Warm-up queries per method at the start of a round.")
    parser.add_argument("--chunk", type=int, default=25, help="Queries per interleaved block.")
    parser.add_argument("--chunk-warmup", type=int, default=3, help="Warm-up queries before every block.")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.15,
        help="Repeat a block during which other processes used more than this share of the CPU (0-1), after "
        "waiting for them to go below it ...",
    )
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="... for at most this many seconds ...")
    parser.add_argument(
        "--quiet-budget", type=float, default=1200.0, help="... and this many in all; then blocks run regardless."
    )
    parser.add_argument(
        "--block-attempts", type=int, default=3, help="Repeat a block that others disturbed (over --quiet-below)."
    )
    parser.add_argument(
        "--idle-ms", type=float, default=12.0, help="The pause before each timed GET /healthz of the idle row."
    )
    parser.add_argument("--note", default="", help="A remark recorded with the results (e.g. what was measured).")
    parser.add_argument("--no-record", action="store_true", help=f"Do not append the table to {RESULTS.name}.")
    args = parser.parse_args(argv)
    if (
        min(args.queries, args.k, args.rounds, args.block_attempts, args.chunk) < 1
        or min(args.warmup, args.chunk_warmup, args.idle_ms) < 0
    ):
        parser.error(
            "--queries, --k, --rounds, --chunk, --block-attempts must be positive, warm-ups and --idle-ms not negative"
        )
    return args


@contextmanager
def work_directory(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    temporary = Path(tempfile.mkdtemp(prefix="fewshot-bench-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def server_backend() -> Any:
    """The embedder the server loads with default settings (the same cached, checked ONNX export)."""
    from fewshot_service.api.app import configured_embedder
    from fewshot_service.settings import Settings

    return configured_embedder(Settings())


def benchmark(args: argparse.Namespace, work_dir: Path) -> tuple[str, bool]:
    import httpx

    from fewshot_service.embedding import SentenceTransformerEmbedder

    train = read_jsonl(args.data / "train.jsonl")
    test = read_jsonl(args.data / "test.jsonl")
    spare = max(args.warmup, args.chunk_warmup)
    if len(test) < args.queries + spare:
        raise SystemExit(f"test.jsonl has {len(test)} questions; need {args.queries + spare}")
    queries = [row["question"] for row in test[: args.queries]]
    warmup = [row["question"] for row in test[args.queries : args.queries + spare]]

    launcher = Launcher.probe(service_env(work_dir))
    import_bank(train, work_dir, launcher)
    with (
        running_server(work_dir, args.port, launcher) as process,
        httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=60.0, trust_env=False) as client,
    ):
        # The server loads in the background while this process loads the model and builds its stores.
        embedder = SentenceTransformerEmbedder()
        bank = load_bank(work_dir, embedder.model_id)
        if len(bank.ids) != len(train):
            raise RuntimeError(f"the bank holds {len(bank.ids)} embedded examples, expected {len(train)}")
        runners: dict[str, QueryFn] = {FLOOR: floor_query(reference_embed(embedder.model), bank, args.k)}
        runners[FLOOR_BACKEND] = floor_query(server_backend().embed, bank, args.k)
        runners[SELECT_DEFAULT] = http_query(client, args.k, None)
        runners[SELECT_DEFAULT_FIELDS] = http_query(client, args.k, None, ["input", "output"])
        runners[SELECT_KNN] = http_query(client, args.k, "knn")
        runners[SELECT_KNN_FIELDS] = http_query(client, args.k, "knn", ["input", "output"])
        runners[LANGCHAIN] = langchain_query(embedder.model, bank, args.k)
        runners[HEALTHZ] = healthz_query(client)
        runners[HEALTHZ_AFTER_IDLE] = healthz_query(client, args.idle_ms / 1000)
        ready = wait_ready(f"http://127.0.0.1:{args.port}", process, work_dir / "server.log", READY_TIMEOUT_S, 0.5)
        if ready.get("embedding_backend") != "onnx":
            raise RuntimeError(f"the server embeds with {ready.get('embedding_backend')}, this run expects onnx")
        if ready.get("examples") != len(train):
            raise RuntimeError(f"the server serves {ready.get('examples')} examples, expected {len(train)}")
        print(f"server ready: {ready}", flush=True)
        results = measure(
            runners,
            queries,
            warmup,
            args,
            CpuMeter([process.pid], args.quiet_below, args.quiet_wait, args.quiet_budget),
        )
    setup = launcher.describe() + (
        " LangChain's FAISS store was built with FAISS.from_embeddings from the bank's stored embeddings "
        "(same model, not re-embedded); its queries are embedded per call like the others."
    )
    return report(results, args, len(bank.ids), setup)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    with work_directory(args.work_dir) as work_dir:
        text, passed = benchmark(args, work_dir)
    print("\n" + text + "\n")
    if not args.no_record:
        record(text)
        print(f"recorded in {RESULTS}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
