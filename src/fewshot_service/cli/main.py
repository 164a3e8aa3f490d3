"""The `fewshot` command: global options, and every command group registered from its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import bank, curation, monitor, serve
from .db import db_app
from .keys import keys_app
from .setup import setup

app = typer.Typer(
    help="fewshot-service: relevant and diverse few-shot examples for LLM prompts.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fewshot-service {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show the libraries' log lines and the service's INFO lines.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    shared = setup(ctx)
    shared.verbose = verbose
    ctx.call_on_close(shared.close)


app.command()(serve.serve)
app.command("import")(bank.import_)
app.command()(bank.export)
app.command()(bank.rebuild)
app.command("select")(bank.select_)
app.command()(curation.expand)
app.command()(monitor.stats)
app.command("eval")(monitor.eval_)

quality_app = typer.Typer(help="The quality model trained from curator labels.", no_args_is_help=True)
quality_app.command("train")(monitor.quality_train)
quality_app.command("score")(monitor.quality_score)
app.add_typer(quality_app, name="quality")
# `fewshot db upgrade | downgrade | current | revision`: schema migrations (issue 9).
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
