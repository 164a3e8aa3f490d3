"""The example bank on SQLAlchemy: SQLite by default, PostgreSQL with the same schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from ..errors import BankError
from ..models import Example, ExampleImport, IndexRow
from .protocol import ImportCounts
from .schema import bank_meta, examples, metadata

# The fields an import may change; comparing them tells an update from an unchanged line.
_CONTENT_FIELDS = (
    "external_id",
    "input",
    "output",
    "steps",
    "topic",
    "difficulty",
    "tags",
    "source",
    "status",
    "quality",
    "meta",
)
_PUBLIC_COLUMNS = [c for c in examples.c if c.name not in ("embedding", "embedding_model", "embedding_dim", "revision")]


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets /v1/select read while a curator writes; synchronous=FULL because an acknowledged
    # write must survive a power cut, not only a crash.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _row_to_example(row: RowMapping) -> Example:
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
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        version=row["version"],
    )


def _content(record: ExampleImport, status: str) -> dict[str, Any]:
    return {
        "external_id": record.external_id,
        "input": record.input,
        "output": record.output,
        "steps": record.steps,
        "topic": record.topic,
        "difficulty": record.difficulty,
        "tags": list(record.tags),
        "source": record.source,
        "status": status,
        "quality": record.quality,
        "meta": record.metadata,
    }


class SqlBank:
    """ExampleBank over a SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite"):
                database = url.split("///", 1)[-1]
                if database and database != ":memory:":
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise BankError(f"cannot open the bank at {url!r}: {exc}") from exc

    # -- schema and counters ------------------------------------------------------------------
    def create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                if conn.execute(select(bank_meta.c.value).where(bank_meta.c.key == "revision")).first() is None:
                    conn.execute(insert(bank_meta).values(key="revision", value=0))
        except SQLAlchemyError as exc:
            raise BankError(f"cannot create the bank schema: {exc}") from exc

    def revision(self) -> int:
        with self._connect() as conn:
            value = conn.execute(select(bank_meta.c.value).where(bank_meta.c.key == "revision")).scalar()
        return int(value or 0)

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(select(func.count()).select_from(examples)).scalar_one())

    @staticmethod
    def _bump_revision(conn: Connection) -> int:
        # The UPDATE takes the write lock first, so concurrent writers get distinct, increasing revisions.
        conn.execute(update(bank_meta).where(bank_meta.c.key == "revision").values(value=bank_meta.c.value + 1))
        return int(conn.execute(select(bank_meta.c.value).where(bank_meta.c.key == "revision")).scalar_one())

    # -- reads --------------------------------------------------------------------------------
    def get_many(self, ids: Sequence[str]) -> dict[str, Example]:
        if not ids:
            return {}
        with self._connect() as conn:
            rows = conn.execute(select(*_PUBLIC_COLUMNS).where(examples.c.id.in_(list(ids)))).mappings()
            return {row["id"]: _row_to_example(row) for row in rows}

    def iter_examples(self, batch_size: int = 1000) -> Iterator[Example]:
        last = ""
        while True:
            with self._connect() as conn:
                rows = (
                    conn.execute(
                        select(*_PUBLIC_COLUMNS).where(examples.c.id > last).order_by(examples.c.id).limit(batch_size)
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                return
            for row in rows:
                yield _row_to_example(row)
            last = rows[-1]["id"]

    def iter_unembedded(self, model_id: str, batch_size: int) -> Iterator[list[tuple[str, str]]]:
        last = ""
        while True:
            with self._connect() as conn:
                rows = conn.execute(
                    select(examples.c.id, examples.c.input)
                    .where(examples.c.id > last, self._unembedded(model_id))
                    .order_by(examples.c.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            yield [(row.id, row.input) for row in rows]
            last = rows[-1].id

    def count_unembedded(self, model_id: str) -> int:
        with self._connect() as conn:
            query = select(func.count()).select_from(examples).where(self._unembedded(model_id))
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _unembedded(model_id: str) -> Any:
        return examples.c.embedding.is_(None) | (examples.c.embedding_model != model_id)

    def iter_index_rows(self, model_id: str, batch_size: int = 5000) -> Iterator[IndexRow]:
        cols = [
            examples.c.id,
            examples.c.embedding,
            examples.c.embedding_dim,
            examples.c.topic,
            examples.c.difficulty,
            examples.c.source,
            examples.c.status,
            examples.c.quality,
            examples.c.tags,
        ]
        last = ""
        while True:
            with self._connect() as conn:
                rows = conn.execute(
                    select(*cols)
                    .where(
                        examples.c.id > last, examples.c.embedding_model == model_id, examples.c.embedding.is_not(None)
                    )
                    .order_by(examples.c.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            for row in rows:
                yield IndexRow(
                    id=row.id,
                    embedding=np.frombuffer(row.embedding, dtype=np.float32),
                    topic=row.topic,
                    difficulty=row.difficulty,
                    source=row.source,
                    status=row.status,
                    quality=row.quality,
                    tags=tuple(row.tags or ()),
                )
            last = rows[-1].id

    # -- writes -------------------------------------------------------------------------------
    def upsert(self, records: Sequence[ExampleImport]) -> ImportCounts:
        counts = ImportCounts()
        if not records:
            return counts
        try:
            with self.engine.begin() as conn:
                revision = self._bump_revision(conn)
                now = datetime.now(UTC)
                for record in records:
                    self._upsert_one(conn, record, revision, now, counts)
        except SQLAlchemyError as exc:
            raise BankError(f"writing to the bank failed: {exc}") from exc
        return counts

    def _upsert_one(
        self, conn: Connection, record: ExampleImport, revision: int, now: datetime, counts: ImportCounts
    ) -> None:
        existing = None
        if record.external_id is not None:
            existing = (
                conn.execute(select(examples).where(examples.c.external_id == record.external_id)).mappings().first()
            )
        if existing is None and record.id is not None:
            existing = conn.execute(select(examples).where(examples.c.id == record.id)).mappings().first()
        content = _content(record, record.status)
        if existing is None:
            conn.execute(
                insert(examples).values(
                    id=record.id or uuid.uuid4().hex,
                    created_at=record.created_at or now,
                    updated_at=record.updated_at or now,
                    version=record.version or 1,
                    revision=revision,
                    embedding=None,
                    embedding_model=None,
                    embedding_dim=None,
                    **content,
                )
            )
            counts.created += 1
            return
        if all(existing[name] == content[name] for name in _CONTENT_FIELDS):
            counts.unchanged += 1
            return
        changes: dict[str, Any] = dict(content, updated_at=now, version=existing["version"] + 1, revision=revision)
        if existing["input"] != record.input:
            # Only a changed input invalidates the stored embedding.
            changes.update(embedding=None, embedding_model=None, embedding_dim=None)
        conn.execute(update(examples).where(examples.c.id == existing["id"]).values(**changes))
        counts.updated += 1

    def store_embeddings(self, rows: Sequence[tuple[str, str]], vectors: np.ndarray, model_id: str) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        try:
            with self.engine.begin() as conn:
                revision = self._bump_revision(conn)
                for (example_id, text), vector in zip(rows, vectors, strict=True):
                    # Matching on the text too: an input edited meanwhile keeps its embedding slot empty.
                    conn.execute(
                        update(examples)
                        .where(examples.c.id == example_id, examples.c.input == text)
                        .values(
                            embedding=vector.tobytes(),
                            embedding_model=model_id,
                            embedding_dim=int(vector.shape[0]),
                            revision=revision,
                        )
                    )
        except SQLAlchemyError as exc:
            raise BankError(f"storing embeddings failed: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise BankError(f"cannot reach the bank: {exc}") from exc
