"""Closing the loop, simulated on real data (issue 20): does feedback steer selection away from corrupted
examples and bring them to curators, and does random feedback leave everything alone?

The bank: BANKING77 training questions of --intents intents, --per-intent each, the answer (output) being
the intent; --corrupt of them (10%) carry a wrong answer (another intent), their topic still the true one,
as a mislabelled example would. Prompts: the held-out test questions of the same intents, in random order.

The simulated application, per round: POST /v1/select (k=4, the service's defaults) for a held-out prompt,
then POST /v1/feedback with a success drawn with probability

    p = clip(0.25 + 0.6 * precision - 0.3 * corrupted, 0.02, 0.98)

where precision is the share of the picks on the prompt's intent with a correct answer, and corrupted the
number of corrupted picks. Utility is re-estimated every --refresh rounds (the server's timer does it on
its own clock). The null case reports success with probability 0.6 whatever was served.

Reported per window of 500 rounds: corrupted share among picks, topic precision (picks on the prompt's
intent), simulated success; at the end the corrupted examples that reached the review queue (with a
reason) and the clean ones flagged (false alarms), and the p50 cost of recording a selection on the
request thread. Everything runs in-process through the real app (TestClient), the real model, SQLite.

    python benchmarks/feedback.py --data /work/shared/datasets/banking77 [--rounds 5000] [--record]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from harness import record_section, run_command  # benchmarks/ is on the path when a script runs

from fewshot_service.api import create_app
from fewshot_service.settings import Settings

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Feedback loop (benchmarks/feedback.py)"
WINDOW = 500
K = 4


def load(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def build_bank(args: argparse.Namespace, rng: random.Random) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    train, test = load(args.data / "train.csv"), load(args.data / "test.csv")
    intents = sorted({intent for _, intent in train})
    chosen = rng.sample(intents, args.intents)
    bank: list[dict[str, Any]] = []
    for intent in chosen:
        rows = [text for text, i in train if i == intent]
        bank += [{"input": text, "output": intent, "topic": intent, "status": "approved"}
                 for text in rng.sample(rows, args.per_intent)]  # fmt: skip
    for example in rng.sample(bank, round(args.corrupt * len(bank))):
        example["output"] = rng.choice([i for i in chosen if i != example["topic"]])
        example["metadata"] = {"corrupted": True}
    prompts = [(text, intent) for text, intent in test if intent in set(chosen)]
    return bank, prompts


def success_chance(picks: list[dict[str, Any]], intent: str) -> float:
    precision = sum(p["topic"] == intent and p["output"] == intent for p in picks) / K
    corrupted = sum(bool(p["metadata"].get("corrupted")) for p in picks)
    return min(0.98, max(0.02, 0.25 + 0.6 * precision - 0.3 * corrupted))


def run(args: argparse.Namespace, informative: bool) -> dict[str, Any]:
    rng = random.Random(args.seed)
    bank, prompts = build_bank(args, rng)
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(
            data_dir=Path(root) / "data", index_dir=Path(root) / "indexes", seed_on_empty=False,
            rate_limit_per_second=0, utility_refresh_seconds=86_400, default_utility_weight=args.weight,
        )  # fmt: skip
        with TestClient(create_app(settings, start="now")) as client:
            added = client.post("/v1/examples", params={"on_duplicate": "keep"}, json={"examples": bank})
            assert added.status_code == 201, added.text
            feedback = client.app.state.feedback  # type: ignore[attr-defined]
            recorder = feedback.recorder
            record_costs: list[float] = []
            original = recorder.record

            def timed(*a: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(*a)
                finally:
                    record_costs.append((time.perf_counter() - started) * 1000)

            recorder.record = timed
            windows: list[dict[str, float]] = []
            tally = {"corrupted": 0, "on_topic": 0, "picks": 0, "success": 0, "rounds": 0}
            started = time.perf_counter()
            for n in range(args.rounds):
                text, intent = rng.choice(prompts)
                answer = client.post("/v1/select", json={"prompt": text, "k": K}).json()
                picks = answer["examples"]
                success = rng.random() < (success_chance(picks, intent) if informative else 0.6)
                report = {"selection_id": answer["selection_id"], "outcome": "success" if success else "failure"}
                assert client.post("/v1/feedback", json=report).status_code == 200
                tally["corrupted"] += sum(bool(p["metadata"].get("corrupted")) for p in picks)
                tally["on_topic"] += sum(p["topic"] == intent for p in picks)
                tally["picks"] += len(picks)
                tally["success"] += success
                tally["rounds"] += 1
                if (n + 1) % args.refresh == 0:
                    feedback.refresh()
                if (n + 1) % WINDOW == 0:
                    windows.append({"rounds": n + 1, "corrupted_share": tally["corrupted"] / tally["picks"],
                                    "topic_precision": tally["on_topic"] / tally["picks"],
                                    "success": tally["success"] / tally["rounds"]})  # fmt: skip
                    tally = dict.fromkeys(tally, 0)
                    print(f"{'informative' if informative else 'null'} {windows[-1]} "
                          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
            feedback.refresh()
            corrupted_ids = {e["id"] for e in client.get("/v1/examples", params={"limit": 500}).json()["examples"]
                             if e["metadata"].get("corrupted")}  # fmt: skip
            queued, reasons = review_queue(client)
            clean_total = len(bank) - len(corrupted_ids)
            return {
                "windows": windows,
                "caught": len(queued & corrupted_ids),
                "corrupted_total": len(corrupted_ids),
                "false_alarms": len(queued - corrupted_ids),
                "clean_total": clean_total,
                "reason": reasons[0] if reasons else None,
                "record_p50_ms": statistics.median(record_costs),
                "seconds": time.perf_counter() - started,
            }


def review_queue(client: TestClient) -> tuple[set[str], list[str]]:
    """The examples the review queue hands out for negative utility (each to a new annotator), with reasons."""
    found: set[str] = set()
    reasons: list[str] = []
    for n in range(1000):
        response = client.get("/v1/review/next", params={"annotator": f"bench-{n}"})
        if response.status_code != 200 or response.json()["reason"] != "negative_utility":
            break
        found.add(response.json()["example"]["id"])
        reasons.append(response.json()["detail"])
    return found, reasons


def report(args: argparse.Namespace, informative: dict[str, Any], null: dict[str, Any]) -> str:
    first, last = informative["windows"][0], informative["windows"][-1]
    drop = 1 - last["corrupted_share"] / first["corrupted_share"] if first["corrupted_share"] else 0.0
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rounds} rounds, utility_weight {args.weight}",
        f"Machine: {run_command('uname', '-srm')}, {run_command('nproc')} cores, busy (load average "
        f"{' '.join(run_command('cat', '/proc/loadavg').split()[:3])}: other work ran alongside). Bank: "
        f"BANKING77, {args.intents} intents x {args.per_intent}, {informative['corrupted_total']} corrupted; "
        "held-out test prompts.",
        "",
        "| rounds | corrupted share (feedback) | topic precision | success | corrupted share (null) | success (null) |",
        "|---|---|---|---|---|---|",
    ]
    for w, n in zip(informative["windows"], null["windows"], strict=False):
        lines.append(f"| {w['rounds']} | {w['corrupted_share']:.3f} | {w['topic_precision']:.3f} | {w['success']:.3f} "
                     f"| {n['corrupted_share']:.3f} | {n['success']:.3f} |")  # fmt: skip
    lines += [
        "",
        f"Corrupted share among picks: {first['corrupted_share']:.3f} in the first {WINDOW} rounds, "
        f"{last['corrupted_share']:.3f} in the last {WINDOW}: down {drop:.0%} (target: at least 70%).",
        f"Review queue (negative utility): {informative['caught']} of {informative['corrupted_total']} corrupted "
        f"examples, {informative['false_alarms']} of {informative['clean_total']} clean ones (false-alarm rate "
        f"{informative['false_alarms'] / informative['clean_total']:.1%}). Null case: "
        f"{null['caught'] + null['false_alarms']} flagged of {null['clean_total'] + null['corrupted_total']}.",
        f"A reason as a curator sees it: \"{informative['reason']}\".",
        f"Recording a selection on the request thread: p50 {informative['record_p50_ms']:.3f} ms "
        f"(null run {null['record_p50_ms']:.3f} ms). Wall time {informative['seconds']:.0f} s + "
        f"{null['seconds']:.0f} s.",
    ]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/datasets/banking77"))
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--intents", type=int, default=20)
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--corrupt", type=float, default=0.1)
    parser.add_argument("--refresh", type=int, default=250, help="rounds between utility estimates")
    parser.add_argument("--weight", type=float, default=Settings().default_utility_weight)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--record", action="store_true", help=f"append the result to {RESULTS.name}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    informative = run(args, informative=True)
    null = run(args, informative=False)
    text = report(args, informative, null)
    print(text)
    if args.record:
        record_section(text, SECTION, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
