"""Time a first start of `fewshot serve` (empty data folder: migrations, seed bank, index) until /readyz is
200, with the seed bank's shipped embeddings and without them (a copy of seed_examples/ lacking the file),
alternating, and report wall time and the server's CPU time for each.

    .venv/bin/python benchmarks/first_start.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, launched, process_cpu_seconds, wait_ready  # benchmarks/ is on the path

REPO = Path(__file__).resolve().parents[1]
FEWSHOT = Path(sys.executable).with_name("fewshot")


def first_start(seed_dir: Path) -> tuple[float, float]:
    """(seconds until ready, CPU seconds the server used by then) for one start on an empty folder."""
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        env = dict(
            os.environ, HF_HUB_OFFLINE="1", FEWSHOT_PORT=str(port), FEWSHOT_DATA_DIR=f"{root}/data",
            FEWSHOT_INDEX_DIR=f"{root}/indexes", FEWSHOT_SEED_DIR=str(seed_dir),
        )  # fmt: skip
        started = time.perf_counter()
        with launched([str(FEWSHOT), "serve"], env, Path(root) / "serve.log") as server:
            wait_ready(f"http://127.0.0.1:{port}", server, Path(root) / "serve.log")
            return time.perf_counter() - started, process_cpu_seconds(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shipped = REPO / "seed_examples"
    with tempfile.TemporaryDirectory() as bare_root:
        bare = Path(bare_root) / "seed_examples"
        shutil.copytree(shipped, bare, ignore=shutil.ignore_patterns("embeddings.npz"))
        first_start(shipped)  # the ONNX export and its check are cached after this one
        runs: dict[str, list[tuple[float, float]]] = {"shipped embeddings": [], "embedded at start": []}
        for _ in range(args.rounds):
            runs["shipped embeddings"].append(first_start(shipped))
            runs["embedded at start"].append(first_start(bare))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {args.rounds} rounds")
    print("| seed bank | ready after, s (median) | server CPU, s (median) |")
    print("| --- | --- | --- |")
    for name, measured in runs.items():
        wall = statistics.median(m[0] for m in measured)
        cpu = statistics.median(m[1] for m in measured)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
