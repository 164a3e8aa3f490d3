"""The example bank on SQLAlchemy: SQLite by default, PostgreSQL with the same schema."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Text, cast, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, FewshotError, ImportFileError, InvalidInput
from ..models import Example, ExampleCreate, ExampleFields, ExampleImport, ExampleQuery, IndexRow, Status
from .base import input_hash, now, row_to_example
from .feedback_sql import FeedbackStore
from .integrity import refusal
from .keys_sql import KeyStore
from .labels_sql import LabelStore
from .migrate import ensure_current
from .protocol import ImportCounts
from .review_sql import PreferenceStore, ReviewStore
from .schema import audit, bank_meta, examples, labels
from .stats_sql import StatsStore

# The fields an import may change; comparing them tells an update from an unchanged line.
_CONTENT_FIELDS = (
    "external_id", "input", "output", "steps", "topic", "difficulty", "tags", "source", "status", "quality", "meta",
)  # fmt: skip
_PUBLIC_COLUMNS = [
    c
    for c in examples.c
    if c.name not in ("embedding", "embedding_model", "embedding_dim", "revision", "input_hash", "deleted_at")
]
_LIVE = examples.c.deleted_at.is_(None)
# API field name -> column name, where they differ, and back.
_COLUMN = {"metadata": "meta"}
_FIELD = {"meta": "metadata"}


_INDEX_COLUMNS = [
    examples.c.id, examples.c.embedding, examples.c.topic, examples.c.difficulty, examples.c.source,
    examples.c.status, examples.c.quality, examples.c.tags, examples.c.predicted_quality, examples.c.revision,
]  # fmt: skip


def _indexable(row: Any, model_id: str) -> bool:
    """Whether the index serves this row: live, and embedded with the served model."""
    return row.deleted_at is None and row.embedding is not None and row.embedding_model == model_id


def _index_row(row: Any) -> IndexRow:
    return IndexRow(
        id=row.id,
        embedding=np.frombuffer(row.embedding, dtype=np.float32),
        topic=row.topic,
        difficulty=row.difficulty,
        source=row.source,
        status=row.status,
        quality=row.quality,
        tags=tuple(row.tags or ()),
        predicted_quality=row.predicted_quality,
        revision=row.revision,
    )


def _content(record: ExampleCreate | ExampleImport) -> dict[str, Any]:
    return {
        "external_id": record.external_id,
        "input": record.input,
        "output": record.output,
        "steps": record.steps,
        "topic": record.topic,
        "difficulty": record.difficulty,
        "tags": list(record.tags),
        "source": record.source,
        "status": record.status,
        "quality": getattr(record, "quality", None),
        "meta": record.metadata,
    }


def _public(content: dict[str, Any]) -> dict[str, Any]:
    """Column names -> API field names, for the history."""
    return {("metadata" if name == "meta" else name): value for name, value in content.items()}


def _embedding_columns(vector: np.ndarray | None, model_id: str | None) -> dict[str, Any]:
    if vector is None:
        return {"embedding": None, "embedding_model": None, "embedding_dim": None}
    vector = np.ascontiguousarray(vector, dtype=np.float32)
    return {"embedding": vector.tobytes(), "embedding_model": model_id, "embedding_dim": int(vector.shape[0])}


def _refuse_when_strict(strict: bool, counts: ImportCounts) -> None:
    if strict and counts.failed:
        # Raised inside the transaction: nothing of the batch is written. Lines are batch positions here.
        raise ImportFileError(
            f"{len(counts.failed)} record(s) cannot be stored; nothing was imported", line_errors=counts.failed
        )


class ExactDuplicates(Conflict):
    """Records whose normalised input a live example already has: (position in the batch, that example's id)."""

    code = "duplicate"

    def __init__(self, clashes: list[tuple[int, str]], message: str | None = None) -> None:
        position, stored = clashes[0]
        message = message or f"example {position} duplicates {stored} (exact); nothing was stored"
        super().__init__(message, field="input")
        self.clashes = clashes


class SqlBank(LabelStore, PreferenceStore, ReviewStore, StatsStore, KeyStore, FeedbackStore):
    """ExampleBank over a SQLAlchemy engine."""

    # -- schema and counters ------------------------------------------------------------------
    def create_schema(self) -> None:
        """Migrate an empty database to the current schema; refuse (SchemaOutOfDate) one at another
        revision, naming `fewshot db upgrade`. Migrations run through the writer (BEGIN IMMEDIATE on SQLite)."""
        ensure_current(self.writer)

    def revision(self) -> int:
        with self._connect() as conn:
            value = conn.execute(select(bank_meta.c.value).where(bank_meta.c.key == "revision")).scalar()
        return int(value or 0)

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(select(func.count()).select_from(examples).where(_LIVE)).scalar_one())

    # -- reads --------------------------------------------------------------------------------
    def get(self, example_id: str) -> Example:
        with self._connect() as conn:
            return row_to_example(self._live_row(conn, example_id, for_write=False))

    def get_many(self, ids: Sequence[str]) -> dict[str, Example]:
        if not ids:
            return {}
        with self._connect() as conn:
            query = select(*_PUBLIC_COLUMNS).where(examples.c.id.in_(list(ids)), _LIVE)
            return {row["id"]: row_to_example(row) for row in conn.execute(query).mappings()}

    def get_many_with_revisions(self, ids: Sequence[str]) -> dict[str, tuple[int, Example]]:
        """Live examples by id, each with the bank revision of its last change (what caches key on)."""
        if not ids:
            return {}
        with self._connect() as conn:
            query = select(*_PUBLIC_COLUMNS, examples.c.revision).where(examples.c.id.in_(list(ids)), _LIVE)
            return {row["id"]: (row["revision"], row_to_example(row)) for row in conn.execute(query).mappings()}

    def iter_with_revisions(self, limit: int, batch_size: int = 2000) -> Iterator[tuple[int, Example]]:
        """Up to `limit` live examples with their revisions, a page at a time in id order.

        Keyset pages (id > last), not OFFSET: each OFFSET page sorts the whole table again, which at a million
        rows made warming the example cache a large part of start-up."""
        last = ""
        taken = 0
        while taken < limit:
            with self._connect() as conn:
                rows = (
                    conn.execute(
                        select(*_PUBLIC_COLUMNS, examples.c.revision)
                        .where(_LIVE, examples.c.id > last)
                        .order_by(examples.c.id)
                        .limit(min(batch_size, limit - taken))
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                return
            yield from ((row["revision"], row_to_example(row)) for row in rows)
            taken += len(rows)
            last = rows[-1]["id"]

    def list_examples(self, query: ExampleQuery, after: str | None, limit: int) -> tuple[list[Example], str | None]:
        """A page of live examples ordered by id, starting after the cursor; the next cursor or None."""
        conditions: list[Any] = [_LIVE]
        if after:
            conditions.append(examples.c.id > after)
        if query.topic:
            conditions.append(examples.c.topic.in_(query.topic))
        if query.source:
            conditions.append(examples.c.source.in_(query.source))
        if query.status:
            conditions.append(examples.c.status.in_(query.status))
        if query.difficulty_min is not None:
            conditions.append(examples.c.difficulty >= query.difficulty_min)
        if query.difficulty_max is not None:
            conditions.append(examples.c.difficulty <= query.difficulty_max)
        if query.tag:
            # Tags are a JSON list whose text (the same on SQLite and PostgreSQL's json) holds each tag as a JSON
            # string: escaped as json.dumps escapes it ("caf\u00e9", "a\"b"), or unescaped if another writer
            # stored it so. Matching the tag's bare text would miss every tag with a quote, a backslash or a
            # letter outside ASCII.
            text = cast(examples.c.tags, Text)
            needles = {json.dumps(tag, ensure_ascii=escaped) for tag in query.tag for escaped in (True, False)}
            conditions.append(or_(*(text.contains(needle, autoescape=True) for needle in sorted(needles))))
        if query.q:
            needle = query.q.lower()
            conditions.append(
                or_(
                    func.lower(examples.c.input).contains(needle, autoescape=True),
                    func.lower(examples.c.output).contains(needle, autoescape=True),
                )
            )
        with self._connect() as conn:
            rows = (
                conn.execute(select(*_PUBLIC_COLUMNS).where(*conditions).order_by(examples.c.id).limit(limit + 1))
                .mappings()
                .all()
            )
        page = [row_to_example(row) for row in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    def iter_examples(self, batch_size: int = 1000, query: ExampleQuery | None = None) -> Iterator[Example]:
        cursor: str | None = None
        while True:
            page, cursor = self.list_examples(query or ExampleQuery(), cursor, batch_size)
            yield from page
            if cursor is None:
                return

    def find_exact(self, hashes: Sequence[str]) -> dict[str, str]:
        """input hash -> id of a live example with that normalised input."""
        if not hashes:
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                select(examples.c.input_hash, examples.c.id).where(examples.c.input_hash.in_(list(hashes)), _LIVE)
            ).all()
        return {row.input_hash: row.id for row in rows}

    def iter_unembedded(self, model_id: str, batch_size: int) -> Iterator[list[tuple[str, str]]]:
        last = ""
        while True:
            with self._connect() as conn:
                rows = conn.execute(
                    select(examples.c.id, examples.c.input)
                    .where(examples.c.id > last, _LIVE, self._unembedded(model_id))
                    .order_by(examples.c.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            yield [(row.id, row.input) for row in rows]
            last = rows[-1].id

    def count_unembedded(self, model_id: str) -> int:
        with self._connect() as conn:
            query = select(func.count()).select_from(examples).where(_LIVE, self._unembedded(model_id))
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _unembedded(model_id: str) -> Any:
        return examples.c.embedding.is_(None) | (examples.c.embedding_model != model_id)

    def index_rows(self, ids: Sequence[str], model_id: str) -> tuple[list[IndexRow], list[str]]:
        """(rows of these examples as the index needs them, ids that are deleted or not embedded)."""
        rows, gone, _ = self.synced(ids, model_id)
        return rows, gone

    def synced(self, ids: Sequence[str], model_id: str) -> tuple[list[IndexRow], list[str], list[tuple[int, Example]]]:
        """index_rows() and, for the rows indexed, the examples with their revisions, in one query: what a
        write hands to the served index and the example cache right after it commits."""
        columns = {c.name: c for c in (*_INDEX_COLUMNS, *_PUBLIC_COLUMNS)}
        with self._connect() as conn:
            found = conn.execute(
                select(*columns.values(), examples.c.deleted_at, examples.c.embedding_model).where(
                    examples.c.id.in_(list(ids))
                )
            ).all()
        live = [r for r in found if _indexable(r, model_id)]
        gone = set(ids) - {r.id for r in live}
        cached = [(r.revision, row_to_example(r._mapping)) for r in live]
        return [_index_row(r) for r in live], sorted(gone), cached

    def changes_since(self, revision: int, model_id: str, batch_size: int = 5000) -> tuple[list[IndexRow], list[str]]:
        """What changed after a revision: rows to (re)index and ids to drop (deleted, or not embedded
        with model_id). Read a page at a time, so a long absence never builds one huge query."""
        rows: list[IndexRow] = []
        gone: list[str] = []
        last = ""
        while True:
            with self._connect() as conn:
                page = conn.execute(
                    select(*_INDEX_COLUMNS, examples.c.deleted_at, examples.c.embedding_model)
                    .where(examples.c.revision > revision, examples.c.id > last)
                    .order_by(examples.c.id)
                    .limit(batch_size)
                ).all()
            for r in page:
                if _indexable(r, model_id):
                    rows.append(_index_row(r))
                else:
                    gone.append(r.id)
            if len(page) < batch_size:
                return rows, gone
            last = page[-1].id

    def iter_index_rows(self, model_id: str, batch_size: int = 5000) -> Iterator[IndexRow]:
        for row in self._embedded_rows(_INDEX_COLUMNS, model_id, batch_size):
            yield _index_row(row)

    # -- curator writes -----------------------------------------------------------------------
    def insert(
        self, records: Sequence[ExampleCreate], vectors: np.ndarray, model_id: str, actor: str, *, unique: bool = False
    ) -> list[Example]:
        """Store new examples with their embeddings in one transaction (all or nothing). unique: refuse
        (ExactDuplicates) when a live example has the same normalised input, checked inside the transaction,
        which every writer of the bank takes in turn, so two replicas cannot both store one text."""
        created: list[Example] = []
        with self._transaction() as conn:
            if unique:
                self._refuse_exact_duplicates(conn, records)
            revision = self._bump_revision(conn)
            stamp = now()
            trail = []
            for record, vector in zip(records, vectors, strict=True):
                values = {
                    "id": uuid.uuid4().hex, **_content(record), "created_at": stamp, "updated_at": stamp,
                    "version": 1, "revision": revision, "input_hash": input_hash(record.input),
                    **_embedding_columns(vector, model_id),
                }  # fmt: skip
                # No savepoint: a refused row ends the whole transaction here, and on PostgreSQL each savepoint
                # is two more round trips per row.
                self._insert_row(conn, values, savepoint=False)
                changes = _public(_content(record))
                trail.append(
                    {"example_id": values["id"], "actor": actor, "action": "create", "changes": changes,
                     "revision": revision, "at": stamp}
                )  # fmt: skip
                created.append(row_to_example(values))  # type: ignore[arg-type]
            if trail:  # in one statement (one round trip), as they cannot be refused
                conn.execute(insert(audit), trail)
        return created

    @staticmethod
    def _refuse_exact_duplicates(conn: Connection, records: Sequence[ExampleFields]) -> None:
        hashes = [input_hash(r.input) for r in records]
        query = select(examples.c.input_hash, examples.c.id).where(examples.c.input_hash.in_(set(hashes)), _LIVE)
        stored = dict(conn.execute(query).tuples().all())
        clashes = [(n, stored[digest]) for n, digest in enumerate(hashes) if digest in stored]
        if clashes:
            raise ExactDuplicates(clashes)

    @staticmethod
    def _refuse_twin(conn: Connection, text: str, own_id: str) -> None:
        """An edit may not make an example's input another live example's (exact, normalised): the same rule
        as for a new example, checked in the write transaction so two replicas cannot both pass it."""
        query = select(examples.c.id).where(
            examples.c.input_hash == input_hash(text), examples.c.id != own_id, _LIVE
        ).limit(1)  # fmt: skip
        twin = conn.execute(query).scalar()
        if twin is not None:
            raise ExactDuplicates([(0, twin)], f"input: duplicate of example {twin} (exact)")

    @staticmethod
    def _live_twin(conn: Connection, text: str) -> RowMapping | None:
        """The live example whose normalised input is text's, if any."""
        query = select(examples).where(examples.c.input_hash == input_hash(text), _LIVE).limit(1)
        return conn.execute(query).mappings().first()

    @staticmethod
    def _insert_row(conn: Connection, values: dict[str, Any], *, savepoint: bool = True) -> None:
        """Insert one example row; a constraint it breaks is answered as the caller's error (naming the field).
        savepoint: the transaction stays usable after a refusal (imports report the line and go on)."""
        try:
            if not savepoint:
                conn.execute(insert(examples).values(**values))
                return
            with conn.begin_nested():
                conn.execute(insert(examples).values(**values))
        except IntegrityError as exc:
            raise refusal(exc, values) from exc

    def update(
        self,
        example_id: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None,
        actor: str,
        vector: np.ndarray | None = None,
        model_id: str | None = None,
        unique: bool = True,
    ) -> Example:
        """Apply field changes; 409 when expected_version is stale, and (unique) ExactDuplicates when a new
        input is another live example's. A new input needs its vector."""
        with self._transaction() as conn:
            row = self._live_row(conn, example_id, for_write=True)
            if expected_version is not None and expected_version != row["version"]:
                raise Conflict(
                    f"example {example_id!r} is at version {row['version']}, the edit was based on "
                    f"version {expected_version}; reload it and edit again",
                    field="version",
                )
            columns = {_COLUMN.get(name, name): value for name, value in changes.items()}
            diff = {
                name: [row[_COLUMN.get(name, name)], value]
                for name, value in changes.items()
                if row[_COLUMN.get(name, name)] != value
            }
            if not diff:
                return row_to_example(row)
            if unique and "input" in diff:
                self._refuse_twin(conn, changes["input"], example_id)
            revision = self._bump_revision(conn)
            values: dict[str, Any] = dict(columns, updated_at=now(), version=row["version"] + 1, revision=revision)
            if "input" in diff:
                values.update(input_hash=input_hash(changes["input"]), **_embedding_columns(vector, model_id))
            try:
                with conn.begin_nested():
                    conn.execute(update(examples).where(examples.c.id == example_id).values(**values))
            except IntegrityError as exc:
                raise refusal(exc, values) from exc
            self._audit(conn, example_id, actor, "update", diff, revision)
            return row_to_example(conn.execute(select(examples).where(examples.c.id == example_id)).mappings().one())

    def delete(self, example_id: str, actor: str) -> None:
        """Delete an example: it keeps a tombstone row (labels stay, external_id is freed)."""
        with self._transaction() as conn:
            row = self._live_row(conn, example_id, for_write=False)
            revision = self._bump_revision(conn)
            conn.execute(
                update(examples)
                .where(examples.c.id == example_id)
                .values(deleted_at=now(), external_id=None, revision=revision, version=row["version"] + 1)
            )
            self._audit(conn, example_id, actor, "delete", {"external_id": [row["external_id"], None]}, revision)

    # -- import ---------------------------------------------------------------------------------
    def upsert(self, records: Sequence[ExampleImport], actor: str = "import", *, strict: bool = False) -> ImportCounts:
        """Restore records as exported (ids, labels, dates, status, quality), idempotent on external_id then
        id; a record that cannot be stored fails alone (counts.failed), or, strict, fails the whole call."""
        counts = ImportCounts()
        if not records:
            return counts
        with self._transaction() as conn:
            bumped: list[int] = []

            def revision() -> int:
                # Bumped at the first real change: re-importing an unchanged file is no write, and must not
                # make a running index look stale.
                if not bumped:
                    bumped.append(self._bump_revision(conn))
                return bumped[0]

            stamp = now()
            for position, record in enumerate(records):
                had_revision = bool(bumped)
                try:
                    with conn.begin_nested():  # a bad record fails alone; the others are stored
                        self._upsert_one(conn, record, revision, stamp, counts, actor)
                except FewshotError as exc:
                    if not had_revision:
                        bumped.clear()  # the bump was rolled back with the record
                    counts.failed.append((position, exc.message))
            _refuse_when_strict(strict, counts)
        return counts

    def import_curated(
        self,
        items: Sequence[tuple[int, ExampleImport, np.ndarray | None]],
        model_id: str | None,
        actor: str,
        *,
        strict: bool = False,
        status: Status | None = None,
    ) -> ImportCounts:
        """Import (position, record, embedding) items under the curator rules, one transaction, each record
        alone in a savepoint: ids and dates from the server, new examples pending (or the operator's
        status) with no quality (labels set those), an update changes only the fields its line gives and
        only at the current version, an exact duplicate of a live example is refused. What was refused or
        done differently is reported."""
        counts = ImportCounts()
        if not items:
            return counts
        with self._transaction() as conn:
            revision = self._bump_revision(conn)
            stamp = now()
            for position, record, vector in items:
                try:
                    with conn.begin_nested():
                        self._import_one_curated(
                            conn, position, record, vector, model_id, revision, stamp, counts, actor, status
                        )
                except FewshotError as exc:
                    counts.failed.append((position, exc.message))
            _refuse_when_strict(strict, counts)
        return counts

    def _import_one_curated(
        self, conn: Connection, position: int, record: ExampleImport, vector: np.ndarray | None,
        model_id: str | None, revision: int, stamp: datetime, counts: ImportCounts, actor: str,
        status: Status | None = None,
    ) -> None:  # fmt: skip
        if record.labels:
            raise InvalidInput(
                "labels: an import line cannot carry labels (curators label through the API; an admin's "
                "mode=restore restores exported labels)",
                field="labels",
            )
        existing = self._import_target(conn, record)
        given = record.model_fields_set
        ignored = [name for name in ("status", "quality", "created_at", "updated_at") if name in given]
        if existing is None:
            example_id = uuid.uuid4().hex
            if record.id is not None:
                counts.notes.append(
                    (position, f"id {record.id!r} is not in the bank; stored as new example {example_id}")
                )
            try:
                self._refuse_exact_duplicates(conn, [record])
            except ExactDuplicates as clash:
                raise ExactDuplicates(
                    clash.clashes, f"input: duplicate of example {clash.clashes[0][1]} (exact)"
                ) from None
            content = dict(_content(record), status=status or "pending", quality=None)
            if ignored and status is None:
                counts.notes.append(
                    (position, f"{', '.join(ignored)} ignored: a new example is pending until labelled")
                )
            self._insert_row(conn, {
                "id": example_id, **content, "created_at": stamp, "updated_at": stamp, "version": 1,
                "revision": revision, "input_hash": input_hash(record.input), **_embedding_columns(vector, model_id),
            })  # fmt: skip
            self._audit(conn, example_id, actor, "import", _public(content), revision)
            counts.created += 1
            counts.ids.append(example_id)
            return
        if record.version is not None and record.version != existing["version"]:
            raise Conflict(
                f"version: example {existing['id']} is at version {existing['version']}, the line is based on "
                f"version {record.version}; export it again and edit that",
                field="version",
            )
        content = dict(_content(record), status=status)
        editable = [name for name in _CONTENT_FIELDS if name not in ("status", "quality")]
        asked = [name for name in editable if _FIELD.get(name, name) in given] + (["status"] if status else [])
        diff = {name: [existing[name], content[name]] for name in asked if existing[name] != content[name]}
        if "input" in diff:
            self._refuse_twin(conn, record.input, existing["id"])
        if ignored and status is None:
            counts.notes.append((position, f"{', '.join(ignored)} ignored: status and quality come from labels"))
        counts.ids.append(existing["id"])
        if not diff:
            counts.unchanged += 1
            return
        values: dict[str, Any] = {name: change[1] for name, change in diff.items()}
        values.update(updated_at=stamp, version=existing["version"] + 1, revision=revision)
        if "input" in diff:
            values.update(input_hash=input_hash(record.input), **_embedding_columns(None, None))
        try:
            with conn.begin_nested():
                conn.execute(update(examples).where(examples.c.id == existing["id"]).values(**values))
        except IntegrityError as exc:
            raise refusal(exc, values) from exc
        self._audit(conn, existing["id"], actor, "import", _public(diff), revision)
        counts.updated += 1

    @staticmethod
    def _import_target(conn: Connection, record: ExampleImport) -> RowMapping | None:
        """The live example a line updates (by external_id, then id); a deleted one's id is refused."""
        if record.external_id is not None:
            row = conn.execute(select(examples).where(examples.c.external_id == record.external_id, _LIVE)).mappings()
            found = row.first()
            if found is not None:
                return found
        if record.id is None:
            return None
        found = conn.execute(select(examples).where(examples.c.id == record.id)).mappings().first()
        if found is not None and found["deleted_at"] is not None:
            raise Conflict(f"id: example {record.id!r} was deleted; its id is not reused", field="id")
        return found

    def unmatched(self, records: Sequence[ExampleImport]) -> list[int]:
        """Positions of the records that match no stored example (by external_id or id): the new ones."""
        external = [r.external_id for r in records if r.external_id is not None]
        ids = [r.id for r in records if r.id is not None]
        with self._connect() as conn:
            known_external = set(
                conn.execute(
                    select(examples.c.external_id).where(examples.c.external_id.in_(external), _LIVE)
                ).scalars()
            )
            known_ids = set(conn.execute(select(examples.c.id).where(examples.c.id.in_(ids))).scalars())
        return [
            n
            for n, r in enumerate(records)
            if r.external_id not in known_external and (r.id is None or r.id not in known_ids)
        ]

    def _upsert_one(
        self,
        conn: Connection,
        record: ExampleImport,
        revision: Callable[[], int],
        stamp: datetime,
        counts: ImportCounts,
        actor: str,
    ) -> None:
        existing = None
        if record.external_id is not None:
            existing = (
                conn.execute(select(examples).where(examples.c.external_id == record.external_id, _LIVE))
                .mappings()
                .first()
            )
        if existing is None and record.id is not None:
            existing = self._import_target(conn, record.model_copy(update={"external_id": None}))
        content = _content(record)
        if existing is None and record.id is None and record.external_id is None:
            # A line with nothing to match it by: restoring the same file twice must not store it twice.
            twin = self._live_twin(conn, record.input)
            if twin is not None:
                if any(twin[name] != content[name] for name in _CONTENT_FIELDS):
                    raise ExactDuplicates(
                        [(0, twin["id"])],
                        f"input: duplicate of example {twin['id']} (exact); give the line that example's id or "
                        "an external_id to change it",
                    )
                counts.unchanged += 1
                counts.ids.append(twin["id"])
                return
        if existing is None:
            example_id = record.id or uuid.uuid4().hex
            self._insert_row(
                conn,
                {
                    "id": example_id, **content, "created_at": record.created_at or stamp,
                    "updated_at": record.updated_at or stamp, "version": record.version or 1, "revision": revision(),
                    "input_hash": input_hash(record.input), **_embedding_columns(None, None),
                },
            )  # fmt: skip
            self._audit(conn, example_id, actor, "import", _public(content), revision())
            self.restore_labels(conn, example_id, record.labels)
            counts.created += 1
            counts.ids.append(example_id)
            return
        if self.restore_labels(conn, existing["id"], record.labels):
            revision()
        counts.ids.append(existing["id"])
        if all(existing[name] == content[name] for name in _CONTENT_FIELDS):
            counts.unchanged += 1
            return
        diff = {name: [existing[name], content[name]] for name in _CONTENT_FIELDS if existing[name] != content[name]}
        values: dict[str, Any] = dict(content, updated_at=stamp, version=existing["version"] + 1, revision=revision())
        if existing["input"] != record.input:
            # Only a changed input invalidates the stored embedding.
            values.update(input_hash=input_hash(record.input), **_embedding_columns(None, None))
        conn.execute(update(examples).where(examples.c.id == existing["id"]).values(**values))
        self._audit(conn, existing["id"], actor, "import", _public(diff), revision())
        counts.updated += 1

    def store_embeddings(self, rows: Sequence[tuple[str, str]], vectors: np.ndarray, model_id: str) -> None:
        with self._transaction() as conn:
            revision = self._bump_revision(conn)
            for (example_id, text), vector in zip(rows, vectors, strict=True):
                # Matching on the text too: an input edited meanwhile keeps its embedding slot empty.
                conn.execute(
                    update(examples)
                    .where(examples.c.id == example_id, examples.c.input == text)
                    .values(revision=revision, **_embedding_columns(vector, model_id))
                )


__all__ = ["SqlBank", "labels"]
