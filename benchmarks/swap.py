"""Hot swap under traffic (issue 4): /v1/select latency while `fewshot rebuild` publishes new index versions.

    python benchmarks/swap.py --root benchmarks/.cache/scale/10k [--rebuilds 5] [--clients 2] [--no-record]

--root is a folder holding a bank (data/) and its index versions (indexes/), as benchmarks/scale.py leaves
them (10k real texts, or the 100k and 1M synthetic banks). One `fewshot serve` runs on it; --clients clients
send /v1/select (k=4, the default strategy, prompts from the bank's own inputs with a case number appended,
so none comes from the prompt cache) back to back. After a quiet stretch, `fewshot rebuild` runs --rebuilds
times in another process, as an operator would run it: each builds a new version from the stored embeddings
and publishes it, and the server adopts it (follower.py: it loads the version, replays the changes since,
and swaps; searches in flight finish on the old index).

Each request's latency is put in one of three groups by when it ran:
- quiet: no rebuild running;
- rebuilding: a rebuild process running (it takes CPU from the server on 2 cores: slower, not the swap's doing);
- swapping: in flight at any moment from the server's "loading index version" log line to its "adopted"
  line plus 0.2 s (the load, the replay and the swap itself).
The swap causes no p99 spike when the swapping p99 is no worse than 1.5 x the rebuilding p99 (the same CPU
contention without the swap); failed requests fail the run. Printed and appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import numpy as np
import scale  # benchmarks/ is on the path when a script runs
from harness import load_average, machine_info, percentile, record_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Hot swap under traffic (issue 4, benchmarks/swap.py)"
SPIKE_LIMIT = 1.5


@dataclass
class Request:
    started: float  # wall clock (time.time), to compare with the server's log
    ended: float
    ok: bool


@dataclass
class Timeline:
    requests: list[Request] = field(default_factory=list)
    rebuilds: list[tuple[float, float]] = field(default_factory=list)  # (started, published) wall clock
    lock: threading.Lock = field(default_factory=threading.Lock)


def bank_prompts(root: Path, count: int) -> list[str]:
    """count prompts from the bank's first inputs, each made distinct by a case number (so none is a near
    copy the leakage guard would drop, and none comes from the prompt cache)."""
    from fewshot_service.bank import SqlBank

    bank = SqlBank(f"sqlite:///{root / 'data' / 'bank.sqlite3'}")
    try:  # a page at a time: the inputs only, never a 1M bank's embeddings
        inputs = [example.input for example in islice(bank.iter_examples(), count)]
    finally:
        bank.close()
    return [f"{text} (case {n})" for n, text in enumerate(inputs)]


def client(url: str, prompts: list[str], stop: threading.Event, timeline: Timeline) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
        for prompt in prompts:
            if stop.is_set():
                return
            started = time.time()
            try:
                response = http.post("/v1/select", json={"prompt": prompt, "k": scale.K})
                ok = response.status_code == 200 and len(response.json()["examples"]) == scale.K
            except httpx.HTTPError:
                ok = False
            with timeline.lock:
                timeline.requests.append(Request(started, time.time(), ok))


def adoptions(log: Path, version_names: list[str]) -> dict[str, tuple[float, float]]:
    """(wall-clock time the server began loading it, time it had swapped it in) for each version adopted."""
    began: dict[str, float] = {}
    found: dict[str, tuple[float, float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = str(entry.get("message", ""))
        at = datetime.fromisoformat(entry["time"]).timestamp() if "time" in entry else 0.0
        for name in version_names:
            if message.startswith(f"loading index version {name}"):
                began[name] = at
            elif message.startswith(f"adopted index version {name}") and name in began:
                found[name] = (began[name], at)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="A folder with data/ and indexes/ (scale.py's).")
    parser.add_argument("--rebuilds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--quiet-seconds", type=float, default=20.0, help="Traffic before the first rebuild.")
    parser.add_argument("--gap-seconds", type=float, default=5.0, help="Traffic between rebuilds.")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    began = time.perf_counter()
    scale.SERVER_SETTINGS["FEWSHOT_LOG_FORMAT"] = "json"  # wall-clock times with milliseconds
    prompts = bank_prompts(root, 100_000)  # more than the clients send in a run
    timeline, stop, names = Timeline(), threading.Event(), []
    with scale.serving(root, args.port) as server:
        share = len(prompts) // args.clients
        threads = [
            threading.Thread(target=client, args=(server.url, prompts[n * share : (n + 1) * share], stop, timeline))
            for n in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(args.quiet_seconds)
        for _ in range(args.rebuilds):
            started = time.time()
            _, _, line = scale.rebuild(root)  # "index version NAME built ..."
            timeline.rebuilds.append((started, time.time()))
            names.append(line.split()[2].rstrip(":"))
            time.sleep(args.gap_seconds)
        stop.set()
        for thread in threads:
            thread.join()
        adopted = adoptions(root / "server.log", names)
    missing = [name for name in names if name not in adopted]
    windows = [(adopted[name][0], adopted[name][1] + 0.2) for name in names if name in adopted]
    groups: dict[str, list[float]] = {"quiet": [], "rebuilding": [], "swapping": []}
    for request in timeline.requests:
        if not request.ok:
            continue
        ms = (request.ended - request.started) * 1000
        if any(request.started <= end and request.ended >= start for start, end in windows):
            groups["swapping"].append(ms)
        elif any(request.started <= end and request.ended >= start for start, end in timeline.rebuilds):
            groups["rebuilding"].append(ms)
        else:
            groups["quiet"].append(ms)
    failed = sum(not request.ok for request in timeline.requests)
    spike = percentile(groups["swapping"], 99) / percentile(groups["rebuilding"], 99)
    passed = failed == 0 and not missing and spike <= SPIKE_LIMIT
    swap_seconds = [end - 0.2 - start for start, end in windows]
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {machine_info()}. Load average at the end: {load_average()}.",
        f"Command: `{' '.join(['python', *sys.argv])}` ({(time.perf_counter() - began) / 60:.0f} min)",
        f"Bank: {server.ready.get('examples'):,} examples in {root.name}; {args.clients} clients back to back; "
        f"{args.rebuilds} runs of `fewshot rebuild` in another process, each publishing a version that the server "
        f"loaded and swapped in within {np.mean(swap_seconds):.2f} s (max {max(swap_seconds, default=0):.2f} s) "
        f"of noticing it (it polls every 0.5 s). Requests: {len(timeline.requests):,}, failed: {failed}"
        + (f"; versions never adopted: {', '.join(missing)}" if missing else "")
        + ".",
        "",
        "| requests | count | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {name} | {len(values):,} | {percentile(values, 50):.1f} | {percentile(values, 99):.1f} | "
            f"{max(values, default=float('nan')):.1f} |"
            for name, values in groups.items()
        ],
        "",
        f"Swapping p99 / rebuilding p99: {spike:.2f} (no spike: <= {SPIKE_LIMIT}); failed requests 0 wanted: "
        f"**{'PASS' if passed else 'FAIL'}**.",
    ]
    text = "\n".join(lines)
    print("\n" + text + "\n")
    if not args.no_record:
        record_section(text, SECTION, RESULTS)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
