"""`fewshot stats | eval | quality`: the bank's shape and agreement, strategy quality, the quality model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .bank import embed_with_progress
from .errors import run
from .output import err, table
from .setup import setup


def stats(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the bank stats and the agreement report as JSON.")
    ] = False,
) -> None:
    """The bank's shape (counts, coverage gaps, near duplicates, label throughput, balance) and label agreement."""
    from ..monitoring.agreement import AgreementReport
    from ..monitoring.service import Monitor
    from ..monitoring.stats import StatsReport

    shared = setup(ctx)
    shared.configure_logging()
    service = shared.service()  # the embedding model is not loaded: stats read stored vectors

    def compute() -> tuple[StatsReport, AgreementReport]:
        service.bank.create_schema()
        monitor = Monitor(service.bank, service.settings)
        return monitor.stats(), monitor.agreement()

    result: tuple[StatsReport, AgreementReport] = run(compute)
    shape, agreement = result
    if as_json:
        typer.echo(
            json.dumps(
                {"stats": shape.model_dump(mode="json"), "agreement": agreement.model_dump(mode="json")}, indent=2
            )
        )
        return
    out = Console(width=max(Console().width, 100), markup=False)  # inputs and topics are printed as they are
    out.print(
        f"{shape.total} live examples at bank revision {shape.bank_revision}: "
        + ", ".join(f"{n} {s}" for s, n in shape.by_status.items())
        + "; sources "
        + ", ".join(f"{n} {s}" for s, n in shape.by_source.items()),
        highlight=False,
    )
    balance = [
        (scope, b.examples, b.topics, b.topic_entropy, b.difficulty_entropy) for scope, b in shape.balance.items()
    ]
    out.print(
        table(
            "Balance (normalised entropy, 1 = even)",
            ["of", "examples", "topics", "topic H", "difficulty H"],
            balance,
        )
    )
    gaps = [(g.topic, g.difficulty, g.approved, g.missing) for g in shape.gaps[:20]]
    out.print(
        table(
            f"Coverage gaps: {len(shape.gaps)} cell(s) under {shape.coverage_target} approved"
            + (" (first 20)" if len(shape.gaps) > 20 else ""),
            ["topic", "difficulty", "approved", "missing"],
            gaps,
        )
    )
    clusters = shape.near_duplicates
    out.print(
        f"Near duplicates (cosine >= {clusters.threshold}): {clusters.count} cluster(s), {clusters.examples} example(s)"
    )
    for cluster in clusters.largest[:5]:
        out.print(
            f"  {cluster.size} examples, max similarity {cluster.max_similarity}: "
            + " | ".join(m.input[:40] for m in cluster.members[:3]),
            highlight=False,
        )
    days = [(d.day, d.labels, d.annotators, d.examples) for d in shape.label_throughput[-14:]]
    out.print(
        table(
            f"Labels per day: {shape.labels_total} in all (last 14 days)",
            ["day", "labels", "annotators", "examples"],
            days,
        )
    )
    questions = [
        (
            q.question,
            q.units,
            q.percent_agreement,
            q.cohen_kappa,
            q.fleiss_kappa.value if q.fleiss_kappa else None,
            q.krippendorff_alpha,
        )
        for q in agreement.questions
    ]
    out.print(table("Agreement", ["question", "units", "% agree", "Cohen κ", "Fleiss κ", "Krippendorff α"], questions))
    annotators = [
        (a.annotator, a.labels, a.agreement_with_consensus, a.gold_items, a.gold_accuracy, a.fast_labels)
        for a in agreement.per_annotator
    ]
    out.print(table("Annotators", ["annotator", "labels", "vs consensus", "gold", "gold accuracy", "fast"], annotators))
    bias = agreement.position_bias
    share = "-" if bias.first_share is None else bias.first_share
    p_value = "-" if bias.p_value is None else bias.p_value
    out.print(
        f"Position bias: the response shown first won {bias.first_wins} of {bias.decisive} decisive preference "
        f"labels (share {share}, p = {p_value}); {agreement.fast_labels.count} label(s) came "
        f"faster than {agreement.fast_labels.threshold_seconds}s after the annotator's previous one",
        highlight=False,
    )


def quality_train(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train on curator verdicts, report cross-validated ROC-AUC and calibration, score every example."""
    from ..quality.service import QualityService, TrainResult

    shared = setup(ctx)
    shared.configure_logging()
    service = shared.service()

    def compute() -> TrainResult:
        service.bank.create_schema()
        embed_with_progress(service)  # an import --no-embed leaves examples the model could not see
        return QualityService(service).train()

    result: TrainResult = run(compute)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    metrics = result.model.metrics
    typer.echo(
        f"model {result.model_id} (bank revision {result.model.bank_revision}): {metrics.examples} labelled examples "
        f"({metrics.good} good, {metrics.bad} bad), {metrics.cv_folds}-fold cross-validated ROC-AUC {metrics.roc_auc}, "
        f"Brier {metrics.brier}, accuracy {metrics.accuracy}"
    )
    for row in metrics.calibration:
        typer.echo(
            f"  predicted {row.mean_predicted:.2f} -> observed {row.observed_good:.2f} ({row.examples} examples)"
        )
    typer.echo(f"scored {result.scored} examples ({result.changed} changed)")


def quality_score(ctx: typer.Context) -> None:
    """Score every live example again with the current model (after new examples arrived)."""
    from ..quality.service import QualityService, ScoreResult

    shared = setup(ctx)
    shared.configure_logging()
    service = shared.service()

    def compute() -> ScoreResult:
        service.bank.create_schema()
        embed_with_progress(service)
        return QualityService(service).score()

    result: ScoreResult = run(compute)
    typer.echo(f"model {result.model_id}: scored {result.scored} examples ({result.changed} changed)")


_EVAL_WORK_DIR = Path("benchmarks/.cache/quality")


def eval_(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="mmlu, banking77, arc or gsm8k.")],
    data: Annotated[Path, typer.Option(help="The data set's folder, or the folder holding it.")],
    queries: Annotated[int, typer.Option(min=1, help="Queries sampled (fixed seed).")] = 300,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=50, help="Examples per query.")] = 4,
    work_dir: Annotated[Path, typer.Option(help="Banks and indexes, kept for reruns.")] = _EVAL_WORK_DIR,
    strategy: Annotated[list[str] | None, typer.Option(help="Only this strategy (repeatable; default all).")] = None,
    diversity: Annotated[list[float] | None, typer.Option(help="Also run at this diversity (repeatable).")] = None,
    langchain: Annotated[bool, typer.Option(help="Add LangChain's selectors when installed.")] = True,
    keep_near_copies: Annotated[
        bool, typer.Option(help="Keep queries with a near copy in the bank (the service hides those, LangChain not).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Run every strategy (and LangChain's selectors) on a labelled data set and print the quality table."""
    from ..evaluation.report import render_dataset
    from ..evaluation.suite import evaluate_dataset

    setup(ctx).configure_logging()
    result = run(  # a DatasetError is one of the tree's: one line, exit 1
        lambda: evaluate_dataset(
            dataset,
            data,
            work_dir,
            queries=queries,
            k=k,
            strategies=strategy,
            diversities=diversity or (),
            baselines=langchain,
            keep_near_copies=keep_near_copies,
            log=lambda message: err.print(message, highlight=False),
        )
    )
    if as_json:
        payload = {"dataset": dataset, "bank": result.bank_size, "queries": len(result.queries), "k": k}
        payload["missing_strategies"] = result.missing
        payload["near_copies"] = result.near_copies
        payload["results"] = [r.as_dict() for r in result.results.values()]
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(render_dataset(result))
