"""Bank outages (issue 21): /v1/select and writes while PostgreSQL is stopped or partitioned.

    python benchmarks/outage.py [--writers 50] [--readers 4] [--seconds 5] [--no-record]

One server (uvicorn in this process, the test's setup: a slice of the seed bank, connect and statement
timeouts of 1 s, the bank probed every 0.25 s) on a fresh database of the local PostgreSQL, reached through
tests/faults.py's proxy. Five phases, each --writers concurrent writes (one new example each) while
--readers clients select back to back and one asks /readyz every 0.1 s: before (proxy passing), refuse
(nothing listens: the database stopped), after refuse, blackhole (connections accepted, nothing answered:
a partition), after blackhole. Each outage phase starts once /readyz reports the bank gone; writes caught
in flight by the fault are the test's concern (tests/postgres/test_bank_outage.py). The load runs in the
server's process, so select latencies include the load generator's share of the CPU and the GIL.
Printed and appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the proxy and the load live with the tests

from harness import machine_info, record_section  # noqa: E402

from fewshot_service.embedding import SentenceTransformerEmbedder  # noqa: E402
from tests.faults import HEADER, FaultProxy, Phase, bank_state, outage_server, run_phase  # noqa: E402
from tests.pg import fresh_database  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Bank outages (issue 21, benchmarks/outage.py)"


def _until(check: object, bound: float) -> None:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > bound:
            raise SystemExit(f"gave up waiting after {bound} s")
        time.sleep(0.05)


def run(writers: int, readers: int, seconds: float) -> list[Phase]:
    embedder = SentenceTransformerEmbedder()
    proxy = FaultProxy()
    phases: list[Phase] = []
    with (
        tempfile.TemporaryDirectory() as root,
        fresh_database() as url,
        outage_server(Path(root), proxy.url(url), embedder) as (base, _),
    ):
        phases.append(run_phase(base, "before", writers=writers, readers=readers, seconds=seconds))
        for fault in ("refuse", "blackhole"):
            proxy.set(fault)  # type: ignore[arg-type]
            _until(lambda: bank_state(base) == "unavailable", 15)
            phases.append(run_phase(base, fault, writers=writers, readers=readers, seconds=seconds))
            proxy.set("pass")
            _until(lambda: bank_state(base) == "available", 15)
            phases.append(run_phase(base, f"after {fault}", writers=writers, readers=readers, seconds=seconds))
    proxy.close()
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="Least length of each phase.")
    parser.add_argument("--no-record", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args()
    started = datetime.now(UTC)
    phases = run(args.writers, args.readers, args.seconds)
    table = HEADER + "\n" + "\n".join(phase.row() for phase in phases)
    text = (
        f"### {started:%Y-%m-%d %H:%M} UTC\n\n{machine_info()}\n\n"
        f"Command: `python benchmarks/outage.py --writers {args.writers} --readers {args.readers} "
        f'--seconds {args.seconds}`. Writes in the "written" column were acknowledged (201); "503" were '
        'refused with bank_unavailable; "other" is any other answer.\n\n' + table
    )
    print(text)
    if not args.no_record:
        record_section(text, SECTION, RESULTS)


if __name__ == "__main__":
    main()
