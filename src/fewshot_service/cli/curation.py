"""`fewshot expand`: new examples written by an LLM, stored as pending for curators to review."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from ..bank.importer import describe
from ..curation.service import Curator
from ..errors import FewshotError
from .errors import INTERRUPTED, fail, run
from .output import err, progress
from .setup import setup

if TYPE_CHECKING:
    from ..expansion import ExpansionReport


def expand(
    ctx: typer.Context,
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
    from ..expansion import Expander, ExpandRequest
    from ..quality.service import QualityService

    shared = setup(ctx)
    shared.configure_logging()
    service = shared.service()

    def generate() -> ExpansionReport:
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
        with progress("expanding", plan.requested) as advance:
            return expander.run(plan, actor="cli", on_stored=advance)

    report = run(generate)
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
        raise typer.Exit(INTERRUPTED)
    if report.stopped == "llm_error":
        raise fail(f"the run stopped early: {report.error}")
    if report.stopped == "max_calls":
        err.print("the call budget ran out before every cell got its examples (see --max-calls)")
