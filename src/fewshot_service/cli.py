"""The `fewshot` command line. Each command builds its objects, calls one function, maps errors to exits."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
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
from rich.text import Text

from .api import build_service
from .curation import Curator
from .curation_types import ExampleQuery
from .errors import FewshotError, ImportFileError
from .importer import describe, import_file
from .models import SelectFilters, SelectRequest
from .rebuild import build_version
from .service import FewshotService
from .settings import Settings


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
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


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
    """Run the HTTP service; it loads the bank and index in the background (watch /readyz)."""
    import uvicorn

    from .api import create_app

    settings = Settings()
    _configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSONL file, one Example object per line.")],
    status: Annotated[StatusChoice | None, typer.Option(help="Set every imported example to this status.")] = None,
    strict: Annotated[bool, typer.Option(help="Write nothing if any line is bad.")] = False,
    embed: Annotated[bool, typer.Option(help="Embed the imported examples now (else at next start).")] = True,
) -> None:
    """Import examples; idempotent on external_id. Bad lines are reported with their numbers."""
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
                service.bank, file, status=status.value if status else None, strict=strict, on_batch=advance
            )
        counts = report.counts
        err.print(
            f"{counts.created} created, {counts.updated} updated, {counts.unchanged} unchanged, "
            f"{len(report.line_errors)} bad line(s)"
        )
        for number, reason in report.line_errors:
            err.print(f"line {number}: {reason}", highlight=False, soft_wrap=True)
        if embed:
            _embed_with_progress(service)
        return len(report.line_errors)

    if _run(run):
        raise _fail("some lines were bad and skipped; the others were imported")


def _embed_with_progress(service: FewshotService) -> None:
    from .rebuild import embed_missing

    pending = service.bank.count_unembedded(service.embedder.model_id)
    if pending:
        with _progress("embedding", pending) as advance:
            embed_missing(
                service.bank, service.embedder, batch_size=service.settings.embed_batch_size, on_progress=advance
            )


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
        with _progress("embedding", pending) as advance:
            _, manifest = build_version(
                service.bank, service.embedder, service.store, batch_size=settings.embed_batch_size, on_embed=advance
            )
        return (
            f"index version {manifest.version}: {manifest.count} examples, bank revision "
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
    strategy: Annotated[str | None, typer.Option(help="knn or mmr (default mmr).")] = None,
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


if __name__ == "__main__":  # pragma: no cover
    app()
