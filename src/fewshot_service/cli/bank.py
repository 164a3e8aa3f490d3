"""`fewshot import | export | rebuild | select`: the bank's contents and the index served from it."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO, cast

import typer
from pydantic import ValidationError

from ..bank.importer import check_file, describe, import_file
from ..curation.service import Curator
from ..curation.types import ExampleQuery
from ..errors import FewshotError
from ..models import ALL_STATUSES as STATUSES
from ..models import SelectFilters, SelectRequest, Status
from ..serving.lifecycle import FewshotService
from .errors import fail, run
from .files import replaced_whole
from .output import err, progress, progress_steps
from .setup import setup

# Typer offers an Enum's members as choices; built from the model's statuses, so the two cannot drift.
StatusChoice = StrEnum("StatusChoice", [(s, s) for s in STATUSES])  # type: ignore[misc]


def import_(
    ctx: typer.Context,
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
    shared = setup(ctx)
    lines = run(lambda: check_file(file))  # before the bank is opened: a bad file creates nothing
    shared.configure_logging()
    service = shared.service()

    def import_lines() -> int:
        service.bank.create_schema()
        with progress("importing", lines) as advance:
            report = import_file(
                service.bank,
                file,
                status=cast(Status, status.value) if status else None,
                strict=strict,
                restore=restore,
                on_batch=advance,
            )
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
            embed_with_progress(service)
        return len(report.line_errors)

    if run(import_lines):
        raise fail("some lines were bad and skipped; the others were imported")


def embed_with_progress(service: FewshotService) -> None:
    """Embed the examples the configured model has no vector for, with a progress bar."""
    from ..serving.rebuild import embed_missing

    pending = service.bank.count_unembedded(service.embedder.model_id)
    if pending:
        with progress("embedding", pending) as advance:
            embed_missing(service.bank, service.embedder, on_progress=advance)


def export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
    status: Annotated[
        list[StatusChoice] | None, typer.Option(help="Only examples with this status (repeatable).")
    ] = None,
) -> None:
    """Write the bank as JSONL (one Example per line, with its labels), which `fewshot import` reads back."""
    shared = setup(ctx)
    shared.configure_logging()
    curator = Curator(shared.service())

    def write() -> int:
        curator.bank.create_schema()
        query = ExampleQuery(status=[s.value for s in status] if status else None)
        lines = curator.export_jsonl(query)
        if output is None:
            return _write_lines(sys.stdout, lines)
        with replaced_whole(output) as handle:
            return _write_lines(handle, lines)

    written = run(write)
    err.print(f"exported {written} example(s)")


def _write_lines(handle: TextIO, lines: Iterable[str]) -> int:
    written = 0
    for line in lines:
        handle.write(line)
        written += 1
    return written


def rebuild(ctx: typer.Context) -> None:
    """Embed what changed (stored embeddings are reused) and build a new index version."""
    from ..serving.rebuild import build_version, index_options

    shared = setup(ctx)
    shared.configure_logging()
    settings, service = shared.settings(), shared.service()

    def build() -> str:
        service.bank.create_schema()
        service.store.prepare()
        pending = service.bank.count_unembedded(service.embedder.model_id)
        with progress_steps(("embedding", pending), ("indexing", service.bank.count())) as (embedded, indexed):
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

    typer.echo(run(build))


def select_(
    ctx: typer.Context,
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
    shared = setup(ctx)
    shared.configure_logging()
    service = shared.service()

    def select() -> None:
        try:
            request = SelectRequest(
                prompt=prompt,
                k=k,
                strategy=strategy,
                diversity=diversity,
                filters=SelectFilters(
                    topics=topic or None, difficulty_min=difficulty_min, difficulty_max=difficulty_max
                ),
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

    run(select)
