"""Selections served, the outcomes reported for them, and the review leases of flagged examples (issue 20)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..errors import BankError
from ..models import Example
from .base import SqlBase, now, row_to_example, utc
from .schema import examples, feedback, labels, leases, selection_items, selections


@dataclass(frozen=True)
class SelectionRecord:
    """One /v1/select answer as recorded: who asked, what was served in which order, in which neighbourhood."""

    id: str
    key_name: str
    created_at: datetime
    strategy: str
    prompt_hash: str
    prompt: str | None
    index_version: str
    estimated_topic: str | None
    difficulty_target: float | None
    served: tuple[tuple[str, int], ...]  # (example id, example version), in the order returned


@dataclass(frozen=True)
class Outcome:
    """The latest feedback on one selection, with what the estimator needs of the selection."""

    selection_id: str
    outcome: float
    created_at: datetime
    estimated_topic: str | None
    difficulty_target: float | None
    served: tuple[tuple[str, int], ...]


class FeedbackStore(SqlBase):
    @contextmanager
    def _plain_write(self) -> Iterator[Connection]:
        """A write that leaves the bank revision alone: selections and feedback change nothing a replica's
        index follows, so they skip the revision row lock every curator write queues on."""
        try:
            with self.writer.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise BankError(f"writing selections or feedback failed: {exc}") from exc

    def record_selections(self, records: Sequence[SelectionRecord]) -> None:
        """Store a batch of selections with their served examples, in one transaction."""
        if not records:
            return
        rows = [
            {"id": r.id, "key_name": r.key_name, "created_at": r.created_at, "strategy": r.strategy,
             "prompt_hash": r.prompt_hash, "prompt": r.prompt, "index_version": r.index_version,
             "estimated_topic": r.estimated_topic, "difficulty_target": r.difficulty_target}
            for r in records
        ]  # fmt: skip
        items = [
            {"selection_id": r.id, "position": n, "example_id": example_id, "example_version": version}
            for r in records
            for n, (example_id, version) in enumerate(r.served)
        ]
        with self._plain_write() as conn:
            conn.execute(insert(selections), rows)
            if items:
                conn.execute(insert(selection_items), items)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            with self._connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise BankError(f"reading selections or feedback failed: {exc}") from exc

    def selection_owner(self, selection_id: str) -> str | None:
        """The key name that made the selection; None when it is unknown or pruned."""
        with self._reading() as conn:
            owner = conn.execute(select(selections.c.key_name).where(selections.c.id == selection_id)).scalar()
        return None if owner is None else str(owner)

    def put_feedback(self, selection_id: str, outcome: float, note: str | None) -> bool:
        """Store the outcome of a selection, replacing an earlier one; False when the selection is gone."""
        with self._plain_write() as conn:
            if conn.execute(select(selections.c.id).where(selections.c.id == selection_id)).first() is None:
                return False  # pruned between the owner check and now
            # One statement that inserts or replaces: a delete and an insert let two reports of the same
            # selection at once (a client retrying a slow call) both insert on PostgreSQL, and the second
            # broke the primary key (a 500).
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            upsert = dialect.insert(feedback).values(
                selection_id=selection_id, outcome=outcome, note=note, created_at=now()
            )
            replace = {name: upsert.excluded[name] for name in ("outcome", "note", "created_at")}
            conn.execute(upsert.on_conflict_do_update(index_elements=[feedback.c.selection_id], set_=replace))
        return True

    def prune_selections(self, before: datetime) -> int:
        """Delete selections made before a time, with their items and feedback; how many."""
        old = select(selections.c.id).where(selections.c.created_at < before)
        with self._plain_write() as conn:
            conn.execute(delete(feedback).where(feedback.c.selection_id.in_(old)))
            conn.execute(delete(selection_items).where(selection_items.c.selection_id.in_(old)))
            return int(conn.execute(delete(selections).where(selections.c.created_at < before)).rowcount or 0)

    def feedback_counts(self) -> tuple[int, int]:
        """(selections kept, selections with feedback)."""
        with self._reading() as conn:
            kept = conn.execute(select(func.count()).select_from(selections)).scalar_one()
            rated = conn.execute(select(func.count()).select_from(feedback)).scalar_one()
        return int(kept), int(rated)

    def iter_outcomes(self, batch_size: int = 5000) -> Iterator[Outcome]:
        """Every selection with feedback, with its served examples, a page at a time in id order."""
        last = ""
        while True:
            with self._reading() as conn:
                page = conn.execute(
                    select(feedback.c.selection_id, feedback.c.outcome, feedback.c.created_at,
                           selections.c.estimated_topic, selections.c.difficulty_target)
                    .join(selections, selections.c.id == feedback.c.selection_id)
                    .where(feedback.c.selection_id > last)
                    .order_by(feedback.c.selection_id)
                    .limit(batch_size)
                ).all()  # fmt: skip
                if not page:
                    return
                served: dict[str, list[tuple[str, int]]] = {row.selection_id: [] for row in page}
                items = conn.execute(
                    select(selection_items)
                    .where(selection_items.c.selection_id.in_(list(served)))
                    .order_by(selection_items.c.selection_id, selection_items.c.position)
                ).all()
            for item in items:
                served[item.selection_id].append((item.example_id, item.example_version))
            for row in page:
                yield Outcome(row.selection_id, float(row.outcome), utc(row.created_at), row.estimated_topic,
                              row.difficulty_target, tuple(served[row.selection_id]))  # fmt: skip
            last = page[-1].selection_id

    def current_versions(self, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """id -> (version, bank revision) of the live examples among ids."""
        found: dict[str, tuple[int, int]] = {}
        ids = list(ids)
        with self._connect() as conn:
            for start in range(0, len(ids), 1000):
                rows = conn.execute(
                    select(examples.c.id, examples.c.version, examples.c.revision).where(
                        examples.c.id.in_(ids[start : start + 1000]), examples.c.deleted_at.is_(None)
                    )
                ).all()
                found.update((row.id, (row.version, row.revision)) for row in rows)
        return found

    def lease_flagged(
        self, annotator: str, flagged: Sequence[tuple[str, int, datetime]], ttl_seconds: float
    ) -> tuple[Example, datetime] | None:
        """Lease the first flagged example (id, version, evidence since) still at that version, that nobody
        labelled since its evidence began and nobody else holds; one already leased to this annotator first."""
        if not flagged:
            return None
        stamp = now()
        since = {example_id: at for example_id, _, at in flagged}
        version = {example_id: v for example_id, v, _ in flagged}
        with self._transaction() as conn:
            conn.execute(delete(leases).where(leases.c.expires_at <= stamp))
            held = dict(conn.execute(select(leases.c.item_id, leases.c.annotator).where(
                leases.c.item_id.in_(list(since)))).all())  # fmt: skip
            reviewed = {
                row.example_id
                for row in conn.execute(
                    select(labels.c.example_id, func.max(labels.c.created_at).label("latest"))
                    .where(labels.c.example_id.in_(list(since)))
                    .group_by(labels.c.example_id)
                ).all()
                if utc(row.latest) >= since[row.example_id]
            }
            rank = {example_id: n for n, example_id in enumerate(since)}
            order = sorted(since, key=lambda i: (held.get(i) != annotator, rank[i]))
            for example_id in order:
                if example_id in reviewed or held.get(example_id, annotator) != annotator:
                    continue
                row = conn.execute(
                    select(examples).where(examples.c.id == example_id, examples.c.deleted_at.is_(None),
                                           examples.c.version == version[example_id])
                ).mappings().first()  # fmt: skip
                if row is None:
                    continue
                expires = stamp + timedelta(seconds=ttl_seconds)
                conn.execute(delete(leases).where(leases.c.item_id == example_id))
                conn.execute(insert(leases).values(item_id=example_id, annotator=annotator, expires_at=expires))
                return row_to_example(row), expires
        return None

    def served_counts(self) -> dict[tuple[str, int], int]:
        """(example id, version) -> times served among the kept selections."""
        query = select(
            selection_items.c.example_id, selection_items.c.example_version, func.count().label("times")
        ).group_by(selection_items.c.example_id, selection_items.c.example_version)
        with self._reading() as conn:
            return {(row.example_id, row.example_version): int(row.times) for row in conn.execute(query).all()}

    def times_served(self, example_id: str, since: datetime) -> tuple[int, int]:
        """(selections since `since`, all kept selections) that served the example, any version."""
        query = (
            select(func.count(), func.count().filter(selections.c.created_at >= since))
            .select_from(selection_items.join(selections, selections.c.id == selection_items.c.selection_id))
            .where(selection_items.c.example_id == example_id)
        )
        with self._reading() as conn:
            total, recent = conn.execute(query).one()
        return int(recent or 0), int(total or 0)
