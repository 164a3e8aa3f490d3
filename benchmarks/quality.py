"""Selection quality on real data (issue 5): every strategy, its diversity frontier and LangChain's selectors.

Four data sets from ../shared/datasets (loaders in fewshot_service.evaluation.datasets): MMLU (topic = label
= subject; the test split, every 10th line a query, the rest the bank), BANKING77 (topic = label = intent;
train the bank, test the queries), ARC (label Easy/Challenge, difficulty Easy=2, Challenge=4; Train the
bank, Test the queries) and GSM8K (unlabelled: relevance and diversity only). Each is imported into an
in-process service under --work-dir (kept, so a rerun neither re-imports nor re-embeds), --queries are
sampled with a fixed seed, and every strategy in fewshot_service.selection.STRATEGIES runs on them:

- at the service's defaults;
- at diversity 0.0, 0.2, 0.4, 0.6, 0.8 when its picks move with diversity (probed: mmr, dpp);
- on data sets with topics, all of that again at each --topic-preferences value;
- on ARC (difficulty labelled), all of that again with difficulty="match";
- LangChain's SemanticSimilarityExampleSelector and MaxMarginalRelevanceExampleSelector (their defaults,
  MMR fetch_k=20, lambda_mult=0.5) over FAISS.from_embeddings of the same stored vectors, same model.

Metrics (fewshot_service.evaluation.metrics): topic precision@k, label hit@k, majority-vote accuracy, mean
difficulty gap, intra-list similarity, mean relevance, p50 latency of the in-process call (query embedding
included). Then the issue 7 verdict for every candidate default: on every labelled data set, topic precision
≥ LangChain similarity's, intra-list similarity ≤ LangChain MMR's, label hit ≥ similarity's and (ARC) the
difficulty gap in match mode ≤ similarity's.

    .venv/bin/python benchmarks/quality.py --data ../shared/datasets [--queries 300] [--work-dir DIR]

The tables are printed and appended, with the machine and date, to benchmarks/RESULTS.md under
"## Selection quality (issue 5)" (--no-record skips that). Needs the bench extra for the LangChain rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness import load_average, machine_info, record_section  # benchmarks/ is on the path when a script runs

LANGCHAIN_PACKAGES = ("langchain-core", "langchain-community")

if TYPE_CHECKING:
    from fewshot_service.evaluation.suite import DatasetRun

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Selection quality (issue 5)"
DEFAULT_WORK_DIR = Path(__file__).resolve().parent / ".cache" / "quality"
SHOWN_CANDIDATES = 12


def record(text: str, path: Path = RESULTS) -> None:
    record_section(text, SECTION, path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from fewshot_service.evaluation.datasets import DATASETS, DEFAULT_QUERIES, DEFAULT_SEED
    from fewshot_service.evaluation.suite import FRONTIER_DIVERSITIES

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder holding mmlu/, banking77/, arc/, gsm8k/.")
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES, help="Queries sampled per data set.")
    parser.add_argument("-k", "--k", type=int, default=4, help="Examples per query.")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="Banks and indexes, kept for reruns.")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--strategies", nargs="+", help="Only these strategies (default: every one in STRATEGIES).")
    parser.add_argument("--diversities", nargs="*", type=float, default=list(FRONTIER_DIVERSITIES))
    parser.add_argument(
        "--topic-preferences",
        nargs="*",
        type=float,
        default=[0.0, 0.25, 0.5, 1.0],
        help="Topic preferences to run besides the default.",
    )
    parser.add_argument("--no-match-frontier", action="store_true", help="difficulty=match only at the defaults.")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed of the query sample.")
    parser.add_argument(
        "--keep-near-copies",
        action="store_true",
        help="Keep queries with a near copy in the bank (skipped by default: the service hides those, LangChain not).",
    )
    parser.add_argument("--json", type=Path, help="Also write every result as JSON to this file.")
    parser.add_argument("--note", default="", help="A remark recorded with the results.")
    parser.add_argument("--no-record", action="store_true", help=f"Do not append the tables to {RESULTS.name}.")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.k < 1:
        parser.error("--queries and --k must be positive")
    if any(not 0.0 <= d <= 1.0 for d in [*args.diversities, *args.topic_preferences]):
        parser.error("diversities and topic preferences lie in 0..1")
    return args


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verdict_section(runs: Sequence[DatasetRun], defaults: tuple[str, float, float | None]) -> str:
    from fewshot_service.evaluation.report import (
        candidate_name,
        describe_checks,
        results_of,
        verdict_table,
        verdicts,
    )

    datasets = [results_of(run) for run in runs]
    labelled = [d.name for d in datasets if d.has_label]
    found = verdicts(datasets)
    passing = [v for v in found if v.passed]
    strategy, diversity, preference = defaults

    def is_current(candidate: tuple[str, float | None, float | None]) -> bool:
        name, used_diversity, used_preference = candidate
        return (
            name == strategy
            and (used_diversity is None or abs(used_diversity - diversity) < 1e-6)
            and (used_preference is None or preference is None or abs(used_preference - preference) < 1e-6)
        )

    current = next((v for v in found if is_current(v.candidate)), None)
    lines = [
        "#### Default-strategy verdict (issue 7)",
        f"A candidate default passes when, on every labelled data set ({', '.join(labelled)}), its plain run has "
        "topic precision ≥ LangChain similarity's (topic P), intra-list similarity ≤ LangChain MMR's (ILS) and "
        "label hit ≥ LangChain similarity's, and, where difficulty is labelled (arc), its difficulty=match run "
        "has a mean difficulty gap ≤ LangChain similarity's. Cells: candidate vs reference; the worst margin is "
        "the smallest distance to the wrong side of a reference (negative: fails).",
        verdict_table(found, SHOWN_CANDIDATES),
    ]
    if passing:
        best = passing[0]
        lines.append(
            f"**Passing on every labelled data set ({len(passing)}):** "
            + "; ".join(candidate_name(v.candidate) for v in passing)
            + f". Largest worst margin: {candidate_name(best.candidate)} — {describe_checks(best)}."
        )
    elif found:
        best = found[0]
        lines.append(
            f"**No candidate passes.** Closest (largest worst margin): {candidate_name(best.candidate)}, worst "
            f"margin {best.worst.margin:+.3f} on {best.worst.dataset} ({best.worst.criterion}); it fails "
            f"{sum(not c.ok for c in best.checks)} of {len(best.checks)} checks — {describe_checks(best)}."
        )
    if current is not None:
        lines.append(
            f"The service's current default ({candidate_name(current.candidate)}) "
            f"{'passes' if current.passed else 'fails'}: {describe_checks(current)}."
        )
    lines.append(
        "The intervals are 95% normal intervals of the mean per-query difference (same queries for both "
        "selectors); an interval that straddles 0 means the sample cannot tell the two apart on that figure."
    )
    return "\n\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from fewshot_service.evaluation.report import render_dataset
    from fewshot_service.evaluation.suite import available_strategies, evaluate_dataset, missing_strategies
    from fewshot_service.settings import Settings

    started = time.perf_counter()
    load_before = load_average()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = []
    for name in args.datasets:
        log(f"{name}: loading")
        runs.append(
            evaluate_dataset(
                name,
                args.data,
                args.work_dir,
                queries=args.queries,
                k=args.k,
                strategies=args.strategies,
                diversities=args.diversities,
                topic_preferences=args.topic_preferences,
                match_frontier=not args.no_match_frontier,
                seed=args.seed,
                keep_near_copies=args.keep_near_copies,
                log=log,
            )
        )
    settings = Settings()
    defaults = (
        settings.default_strategy,
        settings.default_diversity,
        getattr(settings, "default_topic_preference", None),
    )
    missing = missing_strategies()
    threshold = settings.leakage_threshold
    minutes = (time.perf_counter() - started) / 60
    header = [
        f"### {date}",
        f"Machine: {machine_info(LANGCHAIN_PACKAGES)}. Load average (1/5/15 min) {load_before} at the start, "
        f"{load_average()} at the end: the machine was shared, so latencies are indicative only.",
        f"Command: `{shlex.join(['python', *sys.argv])}` ({minutes:.0f} min, cached banks)",
        *([f"Note: {args.note}"] if args.note else []),
        f"Strategies: {', '.join(available_strategies())}"
        + (f"; not available, skipped: {', '.join(missing)}" if missing else "")
        + f". Service defaults: strategy {defaults[0]}, diversity {defaults[1]:g}"
        + (f", topic preference {defaults[2]:g}" if defaults[2] is not None else "")
        + f". k={args.k}, {args.queries} queries per data set (seed {args.seed}). Latency: p50 of the in-process "
        "call (query embedding included), LangChain likewise. Topic P@k falls back to the label on data sets "
        "without topics (arc: Easy/Challenge). "
        + (
            f"Near copies: picks at least as similar to the query as the leakage threshold ({threshold:g}; the service "
            "never returns them, LangChain does)."
            if args.keep_near_copies
            else f"Queries whose near copy (cosine ≥ the leakage threshold, {threshold:g}) is in the bank are left out "
            "of the sample: the service's leakage guard hides such copies and LangChain returns them, so they "
            "would compare the guard, not the selection (--keep-near-copies keeps them)."
        ),
    ]
    text = "\n\n".join(
        [*header, *(render_dataset(run, heading="####") for run in runs), verdict_section(runs, defaults)]
    )
    print("\n" + text + "\n")
    if args.json:
        payload = {
            run.dataset.name: {
                "bank": run.bank_size,
                "queries": len(run.queries),
                "k": run.k,
                "near_copies": run.near_copies,
                "kept_near_copies": run.kept_near_copies,
                "results": [r.as_dict() for r in run.results.values()],
            }
            for run in runs
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if not args.no_record:
        record(text)
        print(f"recorded in {RESULTS}")
    errors = [r for run in runs for r in run.results.values() if r.error]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
