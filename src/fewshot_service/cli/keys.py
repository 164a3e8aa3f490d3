"""`fewshot keys create | list | revoke`: API keys kept in the bank."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from ..auth import ROLES
from ..bank.importer import describe
from ..errors import FewshotError
from .errors import run
from .output import err, table
from .setup import setup

if TYPE_CHECKING:
    from ..auth import Authenticator, KeyCreated

keys_app = typer.Typer(help="API keys kept in the bank (keys in FEWSHOT_API_KEYS live in the settings).")


# Built from the roles auth.py defines, so the choices cannot drift from them.
RoleChoice = StrEnum("RoleChoice", [(r, r) for r in ROLES])  # type: ignore[misc]


def _authenticator(ctx: typer.Context) -> Authenticator:
    from ..auth import Authenticator

    shared = setup(ctx)
    shared.configure_logging()
    bank = shared.service().bank
    bank.create_schema()
    return Authenticator(None, bank)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Who uses the key; the actor of every change made with it.")],
    role: Annotated[RoleChoice, typer.Option(help="reader (select), curator (+ curation), admin (+ operations).")],
    rate: Annotated[
        float | None,
        typer.Option(
            help="Requests per second this key may make on each kind of route (0: no limit); "
            "default: FEWSHOT_RATE_LIMIT_PER_SECOND."
        ),
    ] = None,
) -> None:
    """Create a key and print it (stdout), this once: only its sha256 is stored."""
    from ..auth import KeyCreate

    def create() -> KeyCreated:
        try:
            request = KeyCreate(name=name, role=role.value, rate_per_second=rate)
        except ValidationError as exc:
            raise FewshotError(f"invalid key: {describe(exc)}") from exc
        return _authenticator(ctx).create(request)

    created = run(create)
    err.print(
        f"created key {created.id} ({created.name}, {created.role}); it is shown this once",
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(created.key)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """Every key in the bank, revoked ones included (never the keys themselves)."""
    keys = run(lambda: _authenticator(ctx).list())
    rows = [(k.id, k.name, k.role, k.rate_per_second, k.created_at, k.revoked_at, k.last_used_at) for k in keys]
    columns = ("id", "name", "role", "rate/s", "created", "revoked", "last used")
    Console(markup=False).print(table("API keys", columns, rows))


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id, as listed.")]) -> None:
    """Revoke a key: running servers refuse it within 5 seconds."""
    revoked = run(lambda: _authenticator(ctx).revoke(key_id))
    err.print(f"revoked key {revoked.id} ({revoked.name})", highlight=False, soft_wrap=True)
