"""The `fewshot` command line. Each command builds its objects, calls one function, maps errors to exits."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..api import build_service
from ..curation.importer import describe, import_file
from ..curation.service import Curator
from ..curation.types import ExampleQuery
from ..errors import FewshotError, ImportFileError
from ..models import SelectFilters, SelectRequest
from ..serving.rebuild import build_version, index_options
from ..serving.service import FewshotService
from ..settings import Settings
from .db import db_app


class StatusChoice(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


app = typer.Typer(
    help="fewshot-service: relevant and diverse few-shot examples for LLM prompts.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "-/s", style="progress.data.speed")


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar with count, rate and ETA; yields the function that advances it."""
    with _progress_steps((description, total)) as (advance,):
        yield advance


@contextmanager
def _progress_steps(*steps: tuple[str, int | None]) -> Iterator[tuple[Callable[[int], None], ...]]:
    """One progress bar per step (description, total) in one display; yields their advance functions."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as bar:
        tasks = [bar.add_task(description, total=total) for description, total in steps]
        yield tuple(functools.partial(bar.advance, task) for task in tasks)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ImportFileError as exc:
        for number, reason in exc.line_errors:
            err.print(f"line {number}: {reason}", highlight=False, soft_wrap=True)
        raise _fail(exc.message) from exc
    except FewshotError as exc:
        raise _fail(exc.message) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default FEWSHOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default FEWSHOT_PORT, 8000).")] = None,
) -> None:
    """Run the HTTP service; it loads the bank and index in the background (watch /readyz).

    Beyond loopback it needs API keys (FEWSHOT_API_KEYS or `fewshot keys create`) and refuses to start
    without them; on loopback without keys it serves everyone as admin and says so."""
    import uvicorn

    from .. import logs
    from ..api import create_app
    from ..auth import check_bind
    from ..bank import SqlBank
    from ..serving.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any server thread allocates: see memory.py
    # A request thread waiting for the interpreter gets it after at most 1 ms instead of Python's 5: while a
    # thread of this process does Python work (loading an index version another process published, replaying
    # changes), requests that need the interpreter a dozen times each would otherwise wait up to 5 ms each time.
    sys.setswitchinterval(0.001)
    settings = Settings()
    settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    logs.configure(settings.log_level, settings.log_format)

    def prepare() -> tuple[str | None, Any]:
        bank = SqlBank(settings.resolved_database_url())
        try:
            # An empty database is migrated here; one at another schema revision stops the server before it
            # binds, with the one line that names `fewshot db upgrade`.
            bank.create_schema()
            note = check_bind(settings.api_keys, settings.host, bank)
        finally:
            bank.close()
        return note, create_app(settings)

    note, application = _run(prepare)
    if note:
        logging.getLogger("fewshot_service.serve").warning(note)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # logs.configure() set up every logger, uvicorn's included
        access_log=False,  # the app writes its own access line, with the request id and route
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSONL file, one Example object per line.")],
    status: Annotated[StatusChoice | None, typer.Option(help="Set every imported example to this status.")] = None,
    strict: Annotated[bool, typer.Option(help="Write nothing if any line is bad.")] = False,
    embed: Annotated[bool, typer.Option(help="Embed the imported examples now (else at next start).")] = True,
    restore: Annotated[
        bool, typer.Option(help="Restore an export exactly (ids, labels, dates, status, quality).")
    ] = False,
) -> None:
    """Import examples; idempotent on external_id. Bad lines are reported with their numbers.

    Without --restore the curator rules apply: new examples are pending (labels decide) unless --status
    says otherwise, ids and dates are the server's, lines with labels, stale versions or exact duplicates
    are refused."""
    settings = Settings()
    _configure_logging(settings)
    service = build_service(settings)

    def run() -> int:
        service.bank.create_schema()
        if not file.is_file():
            raise FewshotError(f"no such file: {file}")
        with file.open("rb") as handle:
            total = sum(1 for line in handle if line.strip())
        with _progress("importing", total) as advance:
            report = import_file(
                service.bank, file, status=status.value if status else None, strict=strict, restore=restore,
                on_batch=advance,
            )  # fmt: skip
        counts = report.counts
        err.print(
            f"{counts.created} created, {counts.updated} updated, {counts.unchanged} unchanged, "
            f"{len(report.line_errors)} bad line(s)"
        )
        for number, reason in report.line_errors:
            err.print(f"line {number}: {reason}", highlight=False, soft_wrap=True)
        for number, note in report.notes:
            err.print(f"line {number}: note: {note}", highlight=False, soft_wrap=True)
        if embed:
            _embed_with_progress(service)
        return len(report.line_errors)

    if _run(run):
        raise _fail("some lines were bad and skipped; the others were imported")


def _embed_with_progress(service: FewshotService) -> None:
    from ..serving.rebuild import embed_missing

    pending = service.bank.count_unembedded(service.embedder.model_id)
    if pending:
        with _progress("embedding", pending) as advance:
            embed_missing(service.bank, service.embedder, on_progress=advance)


@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
    status: Annotated[
        list[StatusChoice] | None, typer.Option(help="Only examples with this status (repeatable).")
    ] = None,
) -> None:
    """Write the bank as JSONL (one Example per line, with its labels), which `fewshot import` reads back."""
    settings = Settings()
    curator = Curator(build_service(settings))

    def run() -> int:
        curator.bank.create_schema()
        query = ExampleQuery(status=[s.value for s in status] if status else None)
        written = 0
        handle = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for line in curator.export_jsonl(query):
                handle.write(line)
                written += 1
        finally:
            if output:
                handle.close()
        return written

    written = _run(run)
    err.print(f"exported {written} example(s)")


@app.command()
def rebuild() -> None:
    """Embed what changed (stored embeddings are reused) and build a new index version."""
    settings = Settings()
    _configure_logging(settings)
    service = build_service(settings)

    def run() -> str:
        service.bank.create_schema()
        service.store.prepare()
        pending = service.bank.count_unembedded(service.embedder.model_id)
        with _progress_steps(("embedding", pending), ("indexing", service.bank.count())) as (embedded, indexed):
            _, manifest = build_version(
                service.bank,
                service.embedder,
                service.store,
                on_embed=embedded,
                on_index=indexed,
                options=index_options(settings),
            )
        return (
            f"index version {manifest.version}: {manifest.count} examples ({manifest.kind} index, "
            f"{manifest.storage}), bank revision "
            f"{manifest.bank_revision}, {manifest.build_seconds:.1f}s"
        )

    typer.echo(_run(run))


@app.command("select")
def select_(
    prompt: Annotated[str, typer.Argument(help="The user prompt to find examples for.")],
    k: Annotated[int, typer.Option("-k", help="How many examples.")] = 4,
    topic: Annotated[list[str] | None, typer.Option(help="Only these topics (repeatable).")] = None,
    difficulty_min: Annotated[int | None, typer.Option(help="Lowest difficulty (1-5).")] = None,
    difficulty_max: Annotated[int | None, typer.Option(help="Highest difficulty (1-5).")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="stratified, mmr, dpp, coverage, hybrid, knn or random (default: the service's).")
    ] = None,
    diversity: Annotated[float | None, typer.Option(help="0 (pure relevance) to 1.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON response.")] = False,
) -> None:
    """Select examples for a prompt in-process, as POST /v1/select would."""
    settings = Settings()
    _configure_logging(settings)
    service = build_service(settings)

    def run() -> None:
        try:
            request = SelectRequest(
                prompt=prompt,
                k=k,
                strategy=strategy,
                diversity=diversity,
                filters=SelectFilters(topics=topic, difficulty_min=difficulty_min, difficulty_max=difficulty_max),
            )
        except ValidationError as exc:
            raise FewshotError(describe(exc)) from exc
        service.start()
        result = service.select(request)
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
            return
        for n, example in enumerate(result.examples, start=1):
            typer.echo(
                f"{n}. [{example.topic}, difficulty {example.difficulty}, score {example.score:.3f}] "
                f"{example.input}\n   -> {example.output}"
            )

    _run(run)


@app.command()
def expand(
    topic: Annotated[str | None, typer.Option(help="The cell's topic (with --fill-gaps: only this topic).")] = None,
    difficulty: Annotated[int | None, typer.Option(help="The cell's difficulty, 1-5.")] = None,
    n: Annotated[int | None, typer.Option("--n", "-n", help="New examples to store (with --fill-gaps: a cap).")] = None,
    fill_gaps: Annotated[bool, typer.Option(help="Fill every cell below its target.")] = False,
    target: Annotated[
        int | None, typer.Option(help="Approved+pending examples per cell (default FEWSHOT_EXPAND_CELL_TARGET).")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0-2).")] = None,
    max_calls: Annotated[int | None, typer.Option(help="Most LLM calls (default 3x what is needed).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Have the configured LLM (FEWSHOT_LLM_*) write new examples, stored as pending for review."""
    from ..expansion import Expander, ExpandRequest, ExpansionReport
    from ..quality.service import QualityService

    settings = Settings()
    _configure_logging(settings)
    service = build_service(settings)

    def run() -> ExpansionReport:
        try:
            request = ExpandRequest(
                topic=topic,
                difficulty=difficulty,
                n=n,
                fill_gaps=fill_gaps,
                target=target,
                temperature=temperature,
                max_calls=max_calls,
            )
        except ValidationError as exc:
            raise FewshotError(describe(exc)) from exc
        service.start()
        curator = Curator(service)
        expander = Expander(curator, predict_quality=QualityService(service, curator).scorer())
        plan = expander.plan(request)
        with _progress("expanding", plan.requested) as advance:
            return expander.run(plan, actor="cli", on_stored=advance)

    report: ExpansionReport = _run(run)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    dropped = ", ".join(f"{count} {reason}" for reason, count in report.dropped.items()) or "none"
    err.print(
        f"stored {report.stored} of {report.requested} requested as pending (generated {report.generated}; "
        f"dropped: {dropped}); {report.calls} call(s), {report.retries} retries, {report.tokens.total} tokens",
        highlight=False,
        soft_wrap=True,
    )
    if report.stopped == "interrupted":
        err.print("interrupted: the examples stored so far are kept")
        raise typer.Exit(130)
    if report.stopped == "llm_error":
        raise _fail(f"the run stopped early: {report.error}")
    if report.stopped == "max_calls":
        err.print("the call budget ran out before every cell got its examples (see --max-calls)")


# -- monitoring the bank (issue 6) ------------------------------------------------------------------
def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table | str:
    """A titled table, or just the title and "none" when there are no rows."""
    if not rows:
        return f"{title}: none"
    table = Table(title=title, title_justify="left", show_edge=False, min_width=len(title))
    for column in columns:
        table.add_column(column, justify="left" if column in ("topic", "annotator", "question", "day") else "right")
    for row in rows:
        table.add_row(*("-" if value is None else str(value) for value in row))
    return table


@app.command()
def stats(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the bank stats and the agreement report as JSON.")
    ] = False,
) -> None:
    """The bank's shape (counts, coverage gaps, near duplicates, label throughput, balance) and label agreement."""
    from ..monitoring.agreement import AgreementReport
    from ..monitoring.stats import StatsReport, bank_stats, label_agreement

    settings = Settings()
    service = build_service(settings)  # the embedding model is not loaded: stats read stored vectors

    def run() -> tuple[StatsReport, AgreementReport]:
        service.bank.create_schema()
        return bank_stats(service.bank, settings), label_agreement(service.bank, settings)

    result: tuple[StatsReport, AgreementReport] = _run(run)
    shape, agreement = result
    if as_json:
        typer.echo(
            json.dumps(
                {"stats": shape.model_dump(mode="json"), "agreement": agreement.model_dump(mode="json")}, indent=2
            )
        )
        return
    out = Console(width=max(Console().width, 100))
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
        _table(
            "Balance (normalised entropy, 1 = even)",
            ["of", "examples", "topics", "topic H", "difficulty H"],
            balance,
        )
    )
    gaps = [(g.topic, g.difficulty, g.approved, g.missing) for g in shape.gaps[:20]]
    out.print(
        _table(
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
        _table(
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
    out.print(_table("Agreement", ["question", "units", "% agree", "Cohen κ", "Fleiss κ", "Krippendorff α"], questions))
    annotators = [
        (a.annotator, a.labels, a.agreement_with_consensus, a.gold_items, a.gold_accuracy, a.fast_labels)
        for a in agreement.per_annotator
    ]
    out.print(
        _table("Annotators", ["annotator", "labels", "vs consensus", "gold", "gold accuracy", "fast"], annotators)
    )
    bias = agreement.position_bias
    share = "-" if bias.first_share is None else bias.first_share
    p_value = "-" if bias.p_value is None else bias.p_value
    out.print(
        f"Position bias: the response shown first won {bias.first_wins} of {bias.decisive} decisive preference "
        f"labels (share {share}, p = {p_value}); {agreement.fast_labels.count} label(s) came "
        f"faster than {agreement.fast_labels.threshold_seconds}s after the annotator's previous one",
        highlight=False,
    )


quality_app = typer.Typer(help="The quality model trained from curator labels.", no_args_is_help=True)
app.add_typer(quality_app, name="quality")
# `fewshot db upgrade | downgrade | current | revision`: schema migrations (issue 9).
app.add_typer(db_app, name="db")


@quality_app.command("train")
def quality_train(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train on curator verdicts, report cross-validated ROC-AUC and calibration, score every example."""
    from ..quality.service import QualityService, TrainResult

    settings = Settings()
    _configure_logging(settings)
    service = build_service(settings)

    def run() -> TrainResult:
        service.bank.create_schema()
        _embed_with_progress(service)  # an import --no-embed leaves examples the model could not see
        return QualityService(service).train()

    result: TrainResult = _run(run)
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


@quality_app.command("score")
def quality_score() -> None:
    """Score every live example again with the current model (after new examples arrived)."""
    from ..quality.service import QualityService, ScoreResult

    settings = Settings()
    _configure_logging(settings)
    service = build_service(settings)

    def run() -> ScoreResult:
        service.bank.create_schema()
        _embed_with_progress(service)
        return QualityService(service).score()

    result: ScoreResult = _run(run)
    typer.echo(f"model {result.model_id}: scored {result.scored} examples ({result.changed} changed)")


_EVAL_WORK_DIR = Path("benchmarks/.cache/quality")


@app.command("eval")
def eval_(
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
    from ..evaluation import DatasetError
    from ..evaluation.report import render_dataset
    from ..evaluation.suite import evaluate_dataset

    settings = Settings()
    _configure_logging(settings)
    try:
        result = _run(
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
    except DatasetError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        payload = {"dataset": dataset, "bank": result.bank_size, "queries": len(result.queries), "k": k}
        payload["missing_strategies"] = result.missing
        payload["near_copies"] = result.near_copies
        payload["results"] = [r.as_dict() for r in result.results.values()]
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(render_dataset(result))


# -- API keys (issue 8) -----------------------------------------------------------------------------
keys_app = typer.Typer(help="API keys kept in the bank (keys in FEWSHOT_API_KEYS live in the settings).")
app.add_typer(keys_app, name="keys")


class RoleChoice(StrEnum):
    reader = "reader"
    curator = "curator"
    admin = "admin"


def _authenticator() -> Any:
    from ..auth import Authenticator
    from ..bank import SqlBank

    settings = Settings()
    _configure_logging(settings)
    bank = SqlBank(settings.resolved_database_url())
    bank.create_schema()
    return Authenticator(None, bank)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who uses the key; the actor of every change made with it.")],
    role: Annotated[RoleChoice, typer.Option(help="reader (select), curator (+ curation), admin (+ operations).")],
) -> None:
    """Create a key and print it (stdout), this once: only its sha256 is stored."""
    from ..auth import KeyCreate

    def run() -> Any:
        try:
            request = KeyCreate(name=name, role=role.value)
        except ValidationError as exc:
            raise FewshotError(f"invalid key name {name!r}: {describe(exc)}") from exc
        return _authenticator().create(request)

    created = _run(run)
    err.print(
        f"created key {created.id} ({created.name}, {created.role}); it is shown this once",
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(created.key)


@keys_app.command("list")
def keys_list() -> None:
    """Every key in the bank, revoked ones included (never the keys themselves)."""
    keys = _run(lambda: _authenticator().list())
    rows = [(k.id, k.name, k.role, k.created_at, k.revoked_at, k.last_used_at) for k in keys]
    Console().print(_table("API keys", ("id", "name", "role", "created", "revoked", "last used"), rows))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id, as listed.")]) -> None:
    """Revoke a key: running servers refuse it within 5 seconds."""
    revoked = _run(lambda: _authenticator().revoke(key_id))
    err.print(f"revoked key {revoked.id} ({revoked.name})", highlight=False, soft_wrap=True)
