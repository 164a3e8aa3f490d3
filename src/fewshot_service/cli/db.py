"""`fewshot db ...`: the bank's schema migrations (bank/migrate.py) from the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from ..bank import SqlBank, migrate
from ..errors import FewshotError
from ..settings import Settings

db_app = typer.Typer(
    help="The bank's schema: Alembic migrations that serve SQLite and PostgreSQL alike.", no_args_is_help=True
)
err = Console(stderr=True)
T = TypeVar("T")


def _with_bank(action: Callable[[SqlBank], T]) -> T:
    """Run action on the configured bank; a FewshotError becomes one line on stderr and exit code 1."""
    settings = Settings()
    try:
        bank = SqlBank(settings.resolved_database_url())
        try:
            return action(bank)
        finally:
            bank.close()
    except FewshotError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


def _describe(status: migrate.SchemaStatus) -> str:
    return f"{status.current or 'none'} ({status.state}; head {status.head})"


@db_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the bank to the newest schema; a bank created before migrations is adopted, data kept."""
    before, after = _with_bank(lambda bank: migrate.upgrade(bank.writer, revision))
    typer.echo(f"bank schema: {_describe(before)} -> {_describe(after)}")


@db_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; `base` drops every table of the bank.")],
) -> None:
    """Migrate the bank back to an older schema (what the older version of fewshot-service needs)."""
    before, after = _with_bank(lambda bank: migrate.downgrade(bank.writer, revision))
    typer.echo(f"bank schema: {_describe(before)} -> {_describe(after)}")


@db_app.command("current")
def current(
    check: Annotated[bool, typer.Option(help="Exit 1 unless the bank is at this version's head.")] = False,
) -> None:
    """The bank's schema revision and whether this version of fewshot-service can use it."""
    status = _with_bank(lambda bank: migrate.schema_status(bank.writer))
    typer.echo(_describe(status))
    problem = status.problem()
    if problem:
        err.print(problem, highlight=False, soft_wrap=True)
    if check and status.state != "current":
        raise typer.Exit(1)


@db_app.command("revision")
def revision(
    message: Annotated[str, typer.Argument(help="What the revision changes, e.g. 'add example source url'.")],
    autogenerate: Annotated[
        bool, typer.Option(help="Fill it from bank/schema.py compared with the bank (which must be at head).")
    ] = False,
) -> None:
    """For developers: write the next migration into the package's migrations/versions/ to review."""
    path = _with_bank(lambda bank: migrate.new_revision(bank.writer, message, autogenerate=autogenerate))
    typer.echo(f"wrote {path}")
