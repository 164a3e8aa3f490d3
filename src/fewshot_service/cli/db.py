"""`fewshot db ...`: the bank's schema migrations (bank/migrate.py) from the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from ..bank import SqlBank, migrate
from .errors import run
from .output import err
from .setup import setup

db_app = typer.Typer(
    help="The bank's schema: Alembic migrations that serve SQLite and PostgreSQL alike.", no_args_is_help=True
)
T = TypeVar("T")


def _with_bank(ctx: typer.Context, action: Callable[[SqlBank], T]) -> T:
    """Run action on the configured bank; an error becomes one line on stderr and a non-zero exit."""
    shared = setup(ctx)
    shared.configure_logging()
    return run(lambda: action(shared.service().bank))


def _describe(status: migrate.SchemaStatus) -> str:
    return f"{status.current or 'none'} ({status.state}; head {status.head})"


@db_app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the bank to the newest schema; a bank created before migrations is adopted, data kept."""
    before, after = _with_bank(ctx, lambda bank: migrate.upgrade(bank.writer, revision))
    typer.echo(f"bank schema: {_describe(before)} -> {_describe(after)}")


@db_app.command("downgrade")
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; `base` drops every table of the bank.")],
) -> None:
    """Migrate the bank back to an older schema (what the older version of fewshot-service needs)."""
    before, after = _with_bank(ctx, lambda bank: migrate.downgrade(bank.writer, revision))
    typer.echo(f"bank schema: {_describe(before)} -> {_describe(after)}")


@db_app.command("current")
def current(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option(help="Exit 1 unless the bank is at this version's head.")] = False,
) -> None:
    """The bank's schema revision and whether this version of fewshot-service can use it."""
    status = _with_bank(ctx, lambda bank: migrate.schema_status(bank.writer))
    typer.echo(_describe(status))
    problem = status.problem()
    if problem:
        err.print(problem, highlight=False, soft_wrap=True)
    if check and status.state != "current":
        raise typer.Exit(1)


@db_app.command("revision")
def revision(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(help="What the revision changes, e.g. 'add example source url'.")],
    autogenerate: Annotated[
        bool, typer.Option(help="Fill it from bank/schema.py compared with the bank (which must be at head).")
    ] = False,
) -> None:
    """For developers: write the next migration into the package's migrations/versions/ to review."""
    path = _with_bank(ctx, lambda bank: migrate.new_revision(bank.writer, message, autogenerate=autogenerate))
    typer.echo(f"wrote {path}")
