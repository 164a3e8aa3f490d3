"""Load test: 64 concurrent /v1/select clients, 8 writers and an index swap every 30 s against a real server.

    python benchmarks/load.py [--duration 300] [--data SEED_DIR] [--no-record]

Starts `fewshot serve` on 127.0.0.1 (loopback only; a free port) over a fresh bank in a temporary folder:
the packaged seed bank, or the JSONL files of --data. The server runs with three API keys made for the run
(reader, curator, admin) and the per-key rate limit off, since 64 clients share one reader key here and
the point is the service's own behaviour under load, not the limiter's. Then, for --duration seconds:

- selectors: --selectors clients (64) each sending POST /v1/select back to back with the reader key, every
  prompt distinct (a bank input with a case number appended), so no answer comes from the prompt cache;
- writers: --writers curators (8) each adding one new approved example at a time (POST /v1/examples);
- swaps: POST /v1/admin/rebuild every --swap-every seconds (30): a new index version is built and swapped in
  while selection goes on.

It reports answers by status (the run fails on any 5xx), client-side latency p50/p99 per kind, throughput,
and the server's resident memory (VmRSS from /proc) at the end against its value after a warm-up (the
first swap interval): beyond EXAMPLE_BYTES for each example the writers added meanwhile (the bank, and the
memory that holds it, grows under them), it must not grow by 10% or more. The table is printed and appended to
benchmarks/RESULTS.md with the machine and date (--no-record skips that). Bounded: the run stops after
--duration (at most an hour) whatever happens, and the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import (  # benchmarks/ is on the path when a script runs
    free_port,
    launched,
    machine_info,
    percentile,
    record_section,
    wait_ready,
)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Load: concurrent selection, writes and index swaps (benchmarks/load.py)"
SEED_DIR = Path(__file__).resolve().parents[1] / "seed_examples"
MAX_DURATION = 3600.0
RSS_GROWTH_LIMIT = 0.10
# Memory an added example may take in the server: its cache entry (the Example with its texts and metadata),
# its row in the served index and in the versions kept beside it (1.5 KB of float32 each), its slot-table
# entry. A run without writers (--writers 0) grew 2.9% and levelled off (benchmarks/RESULTS.md, Load).
EXAMPLE_BYTES = 32 * 1024
Sample = tuple[float, int, int]  # seconds into the load, server RSS in bytes, examples added so far


@dataclass
class Tally:
    """What the clients saw: latencies (s) and statuses per kind of request, transport failures."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, status: int, seconds: float) -> None:
        self.statuses[kind][status] += 1
        if status < 400:
            self.latencies[kind].append(seconds)

    def server_errors(self) -> int:
        return sum(n for counts in self.statuses.values() for status, n in counts.items() if status >= 500)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def prompts(seed_dir: Path) -> list[str]:
    texts = [
        json.loads(line)["input"]
        for path in sorted(seed_dir.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    if not texts:
        raise SystemExit(f"no examples in {seed_dir}/*.jsonl")
    return texts


async def selector(client: httpx.AsyncClient, texts: list[str], number: int, stop: float, tally: Tally) -> None:
    n = 0
    while time.monotonic() < stop:
        n += 1
        body = {"prompt": f"{texts[(number * 7919 + n) % len(texts)]} (case {number}-{n})", "k": 4}
        await timed(client, "select", "POST", "/v1/select", tally, json=body)


async def writer(client: httpx.AsyncClient, number: int, stop: float, tally: Tally) -> None:
    n = 0
    while time.monotonic() < stop:
        n += 1
        body = {
            "input": f"Load writer {number}, item {n}: a shelf holds {n + 2} rows of {number + 3} jars. How many jars?",
            "output": str((n + 2) * (number + 3)),
            "status": "approved",
            "external_id": f"load-w{number}-{n}",
        }
        await timed(client, "write", "POST", "/v1/examples?on_duplicate=keep", tally, json=body)


async def swapper(client: httpx.AsyncClient, every: float, stop: float, tally: Tally) -> None:
    while time.monotonic() + every < stop:
        await asyncio.sleep(every)
        await timed(client, "swap", "POST", "/v1/admin/rebuild", tally)


async def timed(client: httpx.AsyncClient, kind: str, method: str, url: str, tally: Tally, **kwargs: Any) -> None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        tally.failures[f"{kind}: {type(exc).__name__}"] += 1
        return
    tally.add(kind, response.status_code, time.perf_counter() - started)


async def sample_memory(pid: int, stop: float, samples: list[Sample], tally: Tally) -> None:
    began = time.monotonic()
    while time.monotonic() < stop:
        samples.append((time.monotonic() - began, rss_bytes(pid), tally.statuses["write"][201]))
        await asyncio.sleep(1.0)
    samples.append((time.monotonic() - began, rss_bytes(pid), tally.statuses["write"][201]))


async def run_load(
    base_url: str, keys: dict[str, str], texts: list[str], args: argparse.Namespace, pid: int
) -> tuple[Tally, list[Sample]]:
    tally = Tally()
    samples: list[Sample] = []
    stop = time.monotonic() + args.duration
    limits = httpx.Limits(max_connections=args.selectors + args.writers + 4)

    def client(role: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {keys[role]}"}
        return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120, limits=limits)

    async with client("reader") as readers, client("curator") as curators, client("admin") as admins:
        tasks = [selector(readers, texts, n, stop, tally) for n in range(args.selectors)]
        tasks += [writer(curators, n, stop, tally) for n in range(args.writers)]
        tasks += [swapper(admins, args.swap_every, stop, tally), sample_memory(pid, stop, samples, tally)]
        await asyncio.gather(*tasks)
    return tally, samples


def server_env(work: Path, seed_dir: Path, keys: dict[str, str]) -> dict[str, str]:
    env = dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(work / "data"),
        FEWSHOT_INDEX_DIR=str(work / "indexes"),
        FEWSHOT_SEED_DIR=str(seed_dir),
        FEWSHOT_API_KEYS=",".join(f"{key}:{role}:load-{role}" for role, key in keys.items()),
        FEWSHOT_RATE_LIMIT_PER_SECOND="0",
        HF_HUB_OFFLINE="1",
    )
    env.pop("FEWSHOT_SEED_ON_EMPTY", None)
    return env


def report(
    args: argparse.Namespace,
    ready: dict[str, Any],
    final: dict[str, Any],
    tally: Tally,
    samples: list[Sample],
) -> tuple[str, bool]:
    _, warm, added_warm = next((s for s in samples if s[0] >= args.swap_every), samples[0])
    _, end, added_end = samples[-1]
    growth = (end - warm) / warm
    # The bank grows under the writers, and memory with it (cache, index versions, slot table): what a leak
    # would show is growth beyond EXAMPLE_BYTES per example added after the warm-up.
    added = added_end - added_warm
    unexplained = (end - warm - added * EXAMPLE_BYTES) / warm
    peak = max(rss for _, rss, _ in samples)
    errors = tally.server_errors()
    rows = []
    for kind in ("select", "write", "swap"):
        done = tally.latencies.get(kind, [])
        p50, p99 = percentile(done, 50) * 1000, percentile(done, 99) * 1000
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(tally.statuses.get(kind, Counter()).items()))
        rows.append(
            f"| {kind} | {sum(tally.statuses.get(kind, Counter()).values())} | {statuses or '-'} | "
            f"{len(done) / args.duration:.1f} | {p50:.1f} | {p99:.1f} |"
        )
    passed = errors == 0 and not tally.failures and unexplained < RSS_GROWTH_LIMIT
    lines = [
        f"### {datetime.now(UTC):%a %b %d %H:%M:%S UTC %Y}",
        "",
        f"Machine: {machine_info()}",
        "",
        f"Command: `{' '.join(['python', *sys.argv])}`",
        "",
        f"Workload: {args.selectors} concurrent /v1/select clients (k=4, every prompt distinct), {args.writers} "
        f"writers adding one example at a time, POST /v1/admin/rebuild every {args.swap_every:g} s, for "
        f"{args.duration:g} s against `fewshot serve` on loopback (API keys on, rate limit off); the bank grew "
        f"from {ready['examples']} to {final['examples']} examples, index version {ready['index_version']} -> "
        f"{final['index_version']}. Latencies are client-side, in ms, of answered requests.",
        "",
        "| request | answered | by status | per second | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"- 5xx answers: **{errors}**; transport failures: {dict(tally.failures) or 'none'}; other processes "
        f"took {args.others_share:.0%} of the machine's CPU during the run",
        f"- server RSS: {samples[0][1] / 2**20:.0f} MiB at the start of the load, {warm / 2**20:.0f} MiB after the "
        f"{args.swap_every:g} s warm-up, {end / 2**20:.0f} MiB at the end (max {peak / 2**20:.0f} MiB): "
        f"growth after warm-up {growth:+.1%} while {added} examples were added, "
        f"{(end - warm) / max(added, 1) / 1024:.0f} KiB each; beyond {EXAMPLE_BYTES // 1024} KiB an example: "
        f"**{unexplained:+.1%}** (limit {RSS_GROWTH_LIMIT:.0%})",
        f"- server RSS every {args.swap_every:g} s (MiB, examples added so far): "
        + ", ".join(f"{rss / 2**20:.0f} ({n})" for _, rss, n in every(samples, args.swap_every)),
        f"- verdict: **{'PASS' if passed else 'FAIL'}** (zero 5xx, no failed request, RSS growth beyond "
        f"{EXAMPLE_BYTES // 1024} KiB per added example under {RSS_GROWTH_LIMIT:.0%})",
    ]
    return "\n".join(lines), passed


def every(samples: list[Sample], step: float) -> list[Sample]:
    """The first sample at or after each multiple of step, and the last one."""
    picked: list[Sample] = []
    for sample in samples:
        if not picked or sample[0] >= (len(picked)) * step:
            picked.append(sample)
    if picked[-1] != samples[-1]:
        picked.append(samples[-1])
    return picked


def record(text: str, path: Path = RESULTS) -> None:
    record_section(text, SECTION, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300, at most 3600)")
    parser.add_argument("--selectors", type=int, default=64)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--swap-every", type=float, default=30.0, help="seconds between index rebuilds")
    parser.add_argument("--data", type=Path, help="folder of *.jsonl examples to seed the bank (default: seed bank)")
    parser.add_argument("--work-dir", type=Path, help="where the bank, indexes and server log go (default: temp)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if args.duration < args.swap_every:
        parser.error("--duration must cover at least one --swap-every interval")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed_dir = (args.data or SEED_DIR).resolve()
    keys = {role: f"load-{role}-{secrets.token_urlsafe(16)}" for role in ("reader", "curator", "admin")}
    with tempfile.TemporaryDirectory(prefix="fewshot-load-") as temp:
        work = args.work_dir or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        port, log = free_port(), work / "server.log"
        base_url = f"http://127.0.0.1:{port}"
        command = [str(Path(sys.executable).with_name("fewshot")), "serve", "--host", "127.0.0.1", "--port", str(port)]
        with launched(command, server_env(work, seed_dir, keys), log) as process:
            ready = wait_ready(base_url, process, log, poll=0.2)
            print(f"server ready: {ready['examples']} examples; loading for {args.duration:g} s", flush=True)
            busy, total = cpu_seconds()
            ours = process_cpu_seconds(process.pid) + process_cpu_seconds(os.getpid())
            tally, samples = asyncio.run(run_load(base_url, keys, prompts(seed_dir), args, process.pid))
            busy_end, total_end = cpu_seconds()
            ours_end = process_cpu_seconds(process.pid) + process_cpu_seconds(os.getpid())
            # The share of the machine's CPU that other processes took during the run (a shared machine).
            args.others_share = max(0.0, (busy_end - busy) - (ours_end - ours)) / (total_end - total)
            final = wait_ready(base_url, process, log, poll=0.2)
    text, passed = report(args, ready, final, tally, samples)
    print(text)
    if not args.no_record:
        record(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
