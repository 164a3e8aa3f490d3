"""Schema migrations of the bank (Alembic, configured in code): status, upgrade, downgrade, start-up check.

The rule at start-up (``ensure_current``): an empty database is migrated to head at once, so a fresh
machine serves in one command; a database at head is used; anything else (an older revision, a bank
created before migrations, a revision this code does not know) is refused with a one-line message that
names the command to run. Schema changes never happen behind an operator's back on a bank that has data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from ..errors import BankError, SchemaOutOfDate
from .schema import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed number: concurrent migrators on one PostgreSQL database (replicas starting together) queue on it.
_PG_MIGRATION_LOCK = 0x66657773  # "fews"

State = Literal["empty", "current", "behind", "unversioned", "unknown"]


def _not_a_context_announcement(record: logging.LogRecord) -> bool:
    """Alembic announces its dialect and DDL mode ("Context impl SQLiteImpl.", "Will assume non-transactional
    DDL.") whenever a migration context opens: four lines at every start and one or two more per status check,
    telling an operator nothing. The lines of a migration that runs ("Running upgrade 0005 -> 0006") stay."""
    return not str(record.msg).startswith(("Context impl ", "Will assume "))


logging.getLogger("alembic.runtime.migration").addFilter(_not_a_context_announcement)


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the database's Alembic revision; None when it has none
    head: str  # the revision this code needs
    has_tables: bool  # whether any table of the bank exists
    known: bool  # whether `current` is a revision of this code's chain

    @property
    def state(self) -> State:
        if self.current is None:
            return "unversioned" if self.has_tables else "empty"
        if self.current == self.head:
            return "current"
        return "behind" if self.known else "unknown"

    def problem(self) -> str | None:
        """Why this code cannot use the database as it is, naming the fix; None when it can."""
        if self.state == "unversioned":
            return (
                f"the bank was created before schema migrations; run `fewshot db upgrade` to bring it to "
                f"revision {self.head}"
            )
        if self.state == "behind":
            return (
                f"the bank schema is at revision {self.current}, this version of fewshot-service needs "
                f"{self.head}: run `fewshot db upgrade`"
            )
        if self.state == "unknown":
            return (
                f"the bank schema is at revision {self.current}, which this version of fewshot-service does not "
                f"know (a newer version migrated it); run that version, or its `fewshot db downgrade {self.head}`"
            )
        return None


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without an ini file; the migrations run on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations package holds no revision"
    return head


def _status(conn: Connection) -> SchemaStatus:
    script = ScriptDirectory.from_config(alembic_config())
    current = MigrationContext.configure(conn).get_current_revision()
    known = current is None or current in {r.revision for r in script.walk_revisions()}
    tables = set(inspect(conn).get_table_names()) & set(metadata.tables)
    return SchemaStatus(current, head_revision(), bool(tables), known)


def schema_status(engine: Engine) -> SchemaStatus:
    try:
        with engine.connect() as conn:
            return _status(conn)
    except SQLAlchemyError as exc:
        raise BankError(f"cannot read the bank's schema revision: {exc}") from exc


def upgrade(engine: Engine, revision: str = "head") -> tuple[SchemaStatus, SchemaStatus]:
    """Migrate up to `revision` (a bank created before migrations is adopted); (before, after)."""
    return _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> tuple[SchemaStatus, SchemaStatus]:
    """Migrate down to `revision` ("base" drops every table of the bank); (before, after)."""
    return _migrate(engine, lambda config: command.downgrade(config, revision))


def ensure_current(engine: Engine) -> SchemaStatus:
    """The start-up rule: migrate an empty database to head; refuse any other database not at head."""
    status = schema_status(engine)
    if status.state == "empty":
        _, status = upgrade(engine)
    problem = status.problem()
    if problem is not None:
        raise SchemaOutOfDate(problem)
    return status


def _migrate(engine: Engine, run: Callable[[Config], None]) -> tuple[SchemaStatus, SchemaStatus]:
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations copy tables; with foreign keys enforced, dropping the old copy of a table
                # that others reference fails. The pragma only takes effect outside a transaction.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        # Held to commit: a second replica starting on the same empty database waits, then
                        # finds it at head and does nothing (on SQLite the writer's BEGIN IMMEDIATE does this).
                        conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                    before = _status(conn)
                    run(alembic_config(conn))
                    after = _status(conn)
            finally:
                if sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    except CommandError as exc:
        raise BankError(f"cannot migrate the bank: {exc}") from exc
    except SQLAlchemyError as exc:
        raise BankError(f"migrating the bank failed: {exc}") from exc
    return before, after


def new_revision(engine: Engine, message: str, *, autogenerate: bool) -> Path:
    """Write the next revision file (numbered after the head) into the package; with autogenerate, Alembic
    fills it from the differences between bank/schema.py and the database, which must be at head."""
    script = ScriptDirectory.from_config(alembic_config())
    number = max(int(r.revision) for r in script.walk_revisions()) + 1
    try:
        with engine.connect() as conn:
            if autogenerate and (problem := _status(conn).problem()) is not None:
                raise SchemaOutOfDate(problem)
            written = command.revision(alembic_config(conn), message, autogenerate=autogenerate, rev_id=f"{number:04d}")
    except CommandError as exc:
        raise BankError(f"cannot write a revision: {exc}") from exc
    scripts = written if isinstance(written, list) else [written]
    assert scripts and scripts[0] is not None
    return Path(scripts[0].path)
