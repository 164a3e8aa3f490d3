"""Alembic's environment: runs the migrations on the connection fewshot_service.bank.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from fewshot_service.bank.schema import metadata

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: autogenerate writes batch operations, which copy the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    # The baseline inspects the database (it adopts banks created before migrations), so SQL scripts
    # cannot be generated without one.
    raise SystemExit("offline (--sql) migrations are not supported; run `fewshot db upgrade` against the database")
connection = config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `fewshot db upgrade` (fewshot_service.bank.migrate), not bare alembic")
run(connection)
