"""The engine, connection handling and row conversions shared by the SQL bank's parts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from ..errors import BankError, Conflict, FewshotError, InvalidInput, NotFound
from ..models import Example, Label, normalise_text
from .guard import CUT_GRACE_SECONDS, BankHealth, BankTimeouts, Watchdog, install
from .schema import audit, bank_meta, examples

# Writers send the new revision on this channel (PostgreSQL); followers LISTEN to it (follower.py).
CHANGES_CHANNEL = "fewshot_changes"


def utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes, PostgreSQL aware ones in the session's time zone; all are UTC here.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_url(url: str) -> str:
    """The URL with PostgreSQL's plain scheme pointed at psycopg 3, the driver the project installs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def masked(url: str) -> str:
    """The URL as it may appear in messages and logs (no password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL is reported as such by create_engine
        return "<unparseable URL>"


def now() -> datetime:
    return datetime.now(UTC)


def input_hash(text: str) -> str:
    return hashlib.sha256(normalise_text(text).encode()).hexdigest()


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def apply(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets /v1/select read while a curator writes; synchronous=FULL because an acknowledged
        # write must survive a power cut, not only a crash.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # LIKE folds ASCII case on SQLite only: a tag filter must match as on PostgreSQL and in /v1/select
        # (exactly); text search lowers both sides itself.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    return apply


def _sqlite_unicode_lower(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # SQLite's lower() folds ASCII letters only, PostgreSQL's every letter: a search for "école" must find
    # "ÉCOLE" on both banks alike.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(text: Any) -> Any:
    return text.lower() if isinstance(text, str) else text


def _sqlite_manual_transactions(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Connection) -> None:
    # A write transaction takes the write lock up front: a deferred one that read first fails with
    # SQLITE_BUSY_SNAPSHOT when another writer commits meanwhile, and busy_timeout does not retry that.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def row_to_example(row: RowMapping) -> Example:
    return Example(
        id=row["id"],
        external_id=row["external_id"],
        input=row["input"],
        output=row["output"],
        steps=row["steps"],
        topic=row["topic"],
        difficulty=row["difficulty"],
        tags=row["tags"],
        source=row["source"],
        status=row["status"],
        quality=row["quality"],
        metadata=row["meta"],
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        version=row["version"],
    )


def row_to_label(row: RowMapping) -> Label:
    return Label(
        id=row["id"],
        example_id=row["example_id"],
        annotator=row["annotator"],
        verdict=row["verdict"],
        score=row["score"],
        issues=row["issues"],
        note=row["note"],
        corrected_output=row["corrected_output"],
        step_ratings=row["step_ratings"],
        first_wrong_step=row["first_wrong_step"],
        created_at=utc(row["created_at"]),
        recorded_by=row["recorded_by"],
        withdrawn_at=None if row["withdrawn_at"] is None else utc(row["withdrawn_at"]),
        withdrawn_by=row["withdrawn_by"],
    )


def _bounded(timeouts: BankTimeouts) -> dict[str, Any]:
    """PostgreSQL engine options that bound connecting, waiting for a pooled connection and each statement."""
    statement_ms = int(timeouts.statement_seconds * 1000)
    return {
        "connect_args": {
            "connect_timeout": max(1, round(timeouts.connect_seconds)),  # libpq counts whole seconds
            # The server cancels a statement (or a wait for a lock) that runs longer.
            "options": f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
        },
        "pool_timeout": timeouts.connect_seconds,
        # No pool_pre_ping: guard.py pings on checkout itself, where the watchdog can time the ping.
    }


_SETTING = "FEWSHOT_DATA_DIR, or the path in FEWSHOT_DATABASE_URL"


def _sqlite_folder(folder: Path) -> None:
    """Create the SQLite bank's folder and check it can be written: SQLite keeps its journal (WAL) beside the
    file, and without this says only "unable to open database file", named as a bank outage."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BankError(f"cannot create the bank's folder {str(folder)!r} ({_SETTING}): {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BankError(f"cannot write in the bank's folder {str(folder)!r} ({_SETTING}): it is not writable")


class SqlBase:
    """Engine and transaction helpers; SQLite gets WAL and durable commits."""

    def __init__(self, url: str, timeouts: BankTimeouts | None = None) -> None:
        """timeouts bound every call (a server passes its settings'); without them calls wait as long as the
        database makes them, which suits one-off commands such as a long migration."""
        self.url = url
        self.timeouts = timeouts
        self.health = BankHealth()
        self._watchdog: Watchdog | None = None
        try:
            url = database_url(url)
            if url.startswith("sqlite"):
                database = url.split("///", 1)[-1]
                if database and database != ":memory:":
                    _sqlite_folder(Path(database).parent)
                pragmas = _sqlite_pragmas(int((timeouts.statement_seconds if timeouts else 30.0) * 1000))
                self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
                event.listen(self.engine, "connect", pragmas)
                event.listen(self.engine, "connect", _sqlite_unicode_lower)
                # Writes go through their own engine whose transactions begin IMMEDIATE; reads stay
                # deferred so /v1/select never waits for a writer (WAL).
                self.writer: Engine = create_engine(url, connect_args={"check_same_thread": False})
                event.listen(self.writer, "connect", pragmas)
                event.listen(self.writer, "connect", _sqlite_unicode_lower)
                event.listen(self.writer, "connect", _sqlite_manual_transactions)
                event.listen(self.writer, "begin", _begin_immediate)
                install(self.writer, self.health, None)
            elif timeouts is None:
                self.engine = create_engine(url, pool_pre_ping=True)
                self.writer = self.engine
            else:
                self.engine = create_engine(url, **_bounded(timeouts))
                self.writer = self.engine
                self._watchdog = Watchdog(timeouts.statement_seconds + CUT_GRACE_SECONDS)
            install(self.engine, self.health, self._watchdog)
        except ImportError as exc:  # the PostgreSQL driver is the [postgres] extra
            raise BankError(
                f"cannot open the bank at {masked(url)!r}: its driver {exc.name or exc} is not installed; "
                "for PostgreSQL: pip install 'fewshot-service[postgres]'"
            ) from exc
        except (SQLAlchemyError, ValueError) as exc:
            raise BankError(f"cannot open the bank at {masked(url)!r}: {exc}") from exc

    def _connect(self) -> Connection:
        if self.health.refusing():
            raise self.health.refuse()
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise BankError(f"cannot reach the bank: {exc}") from exc

    def ping(self) -> None:
        """One trivial query, past the fail-fast check: how probes learn that the bank is back."""
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def _embedded_rows(self, columns: Sequence[Any], model_id: str, batch_size: int) -> Iterator[Any]:
        """Rows of the live examples embedded with model_id, fetched a page at a time in id order."""
        last = ""
        while True:
            with self._connect() as conn:
                rows = conn.execute(
                    select(*columns, examples.c.id.label("page_key"))
                    .where(
                        examples.c.id > last,
                        examples.c.deleted_at.is_(None),
                        examples.c.embedding_model == model_id,
                        examples.c.embedding.is_not(None),
                    )
                    .order_by(examples.c.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].page_key

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back (and translated) on error.

        Write transactions run one at a time, on PostgreSQL as on SQLite (BEGIN IMMEDIATE): the first
        statement locks the revision counter's row until commit. So revisions are given out in commit
        order (a follower that has seen revision r has seen every change up to r), and what a writer
        reads before it writes (a version check, an existing external_id) is not changed under it.
        """
        if self.health.refusing():
            raise self.health.refuse()
        try:
            with self.writer.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(select(bank_meta.c.value).where(bank_meta.c.key == "revision").with_for_update())
                yield conn
        except FewshotError:
            raise
        except DataError as exc:
            # A value the database cannot hold although the models accepted it (PostgreSQL refuses NUL
            # characters in text and integers past 2^31, which SQLite stores): the caller's input, not a fault.
            raise InvalidInput(f"a value cannot be stored in the bank: {str(exc.orig).strip()}") from exc
        except OverflowError as exc:  # SQLite's driver, for an integer past 64 bits, raises this unwrapped
            raise InvalidInput(f"a value cannot be stored in the bank: {exc}") from exc
        except SQLAlchemyError as exc:
            raise BankError(f"writing to the bank failed: {exc}") from exc

    @staticmethod
    def _live_row(conn: Connection, example_id: str, *, for_write: bool) -> RowMapping:
        row = conn.execute(select(examples).where(examples.c.id == example_id)).mappings().first()
        if row is None:
            raise NotFound(f"no example with id {example_id!r}", field="id")
        if row["deleted_at"] is not None:
            if for_write:
                raise Conflict(f"example {example_id!r} was deleted", field="id")
            raise NotFound(f"example {example_id!r} was deleted", field="id")
        return row

    @staticmethod
    def _bump_revision(conn: Connection) -> int:
        # Writers hold the write lock (see _transaction), so concurrent writers get distinct, increasing revisions.
        bump = update(bank_meta).where(bank_meta.c.key == "revision").values(value=bank_meta.c.value + 1)
        revision = int(conn.execute(bump.returning(bank_meta.c.value)).scalar_one())
        if conn.dialect.name == "postgresql":
            # Delivered to listening replicas when (and only if) this transaction commits.
            conn.execute(select(func.pg_notify(CHANGES_CHANNEL, str(revision))))
        return revision

    @staticmethod
    def _audit(
        conn: Connection, example_id: str, actor: str, action: str, changes: dict[str, Any], revision: int
    ) -> None:
        conn.execute(
            insert(audit).values(
                example_id=example_id, actor=actor, action=action, changes=changes, revision=revision, at=now()
            )
        )

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        self.engine.dispose()
        self.writer.dispose()
