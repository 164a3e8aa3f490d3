"""Curator labels (append-only) and the audit history of examples."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..curation.types import HistoryEntry
from ..errors import Conflict, NotFound
from ..models import Example, Label, LabelCreate
from .base import SqlBase, now, row_to_example, row_to_label, utc
from .schema import audit, examples, labels

# (the example, its labels including the new one) -> the example fields to change (status, quality)
Policy = Callable[[Example, list[Label]], dict[str, Any]]


class LabelStore(SqlBase):
    def add_label(
        self, example_id: str, label: LabelCreate, *, check: Callable[[Example, LabelCreate], None], policy: Policy,
        actor: str,
    ) -> tuple[Label, Example]:  # fmt: skip
        """Append a label and let the policy update the example's status and quality, in one transaction."""
        with self._transaction() as conn:
            row = self._live_row(conn, example_id, for_write=True)
            check(row_to_example(row), label)
            revision = self._bump_revision(conn)
            stored = Label(id=uuid.uuid4().hex, example_id=example_id, created_at=now(), **label.model_dump())
            conn.execute(insert(labels).values(**stored.model_dump()))
            changes = policy(row_to_example(row), self._labels(conn, example_id))
            changes = {name: value for name, value in changes.items() if row[name] != value}
            entry: dict[str, Any] = {"label_id": stored.id, "verdict": stored.verdict, "score": stored.score}
            entry.update({name: [row[name], value] for name, value in changes.items()})
            if changes:
                conn.execute(
                    update(examples)
                    .where(examples.c.id == example_id)
                    .values(**changes, version=row["version"] + 1, updated_at=now(), revision=revision)
                )
            self._audit(conn, example_id, actor, "label", entry, revision)
            example = row_to_example(conn.execute(select(examples).where(examples.c.id == example_id)).mappings().one())
        return stored, example

    @staticmethod
    def _labels(conn: Connection, example_id: str) -> list[Label]:
        query = select(labels).where(labels.c.example_id == example_id).order_by(labels.c.created_at, labels.c.id)
        return [row_to_label(row) for row in conn.execute(query).mappings()]

    def labels_of(self, example_id: str) -> list[Label]:
        with self._connect() as conn:
            self._existing(conn, example_id)
            return self._labels(conn, example_id)

    def labels_for(self, example_ids: Sequence[str]) -> dict[str, list[Label]]:
        if not example_ids:
            return {}
        result: dict[str, list[Label]] = {i: [] for i in example_ids}
        with self._connect() as conn:
            query = select(labels).where(labels.c.example_id.in_(list(example_ids))).order_by(labels.c.created_at)
            for row in conn.execute(query).mappings():
                result[row["example_id"]].append(row_to_label(row))
        return result

    def history(self, example_id: str) -> list[HistoryEntry]:
        """Every change to the example, oldest first (deleted examples keep their history)."""
        with self._connect() as conn:
            self._existing(conn, example_id)
            rows = conn.execute(select(audit).where(audit.c.example_id == example_id).order_by(audit.c.seq)).mappings()
            return [
                HistoryEntry(
                    actor=r["actor"], action=r["action"], changes=r["changes"], revision=r["revision"], at=utc(r["at"])
                )
                for r in rows
            ]

    @staticmethod
    def _existing(conn: Connection, example_id: str) -> None:
        if conn.execute(select(examples.c.id).where(examples.c.id == example_id)).first() is None:
            raise NotFound(f"no example with id {example_id!r}", field="id")

    @staticmethod
    def restore_labels(conn: Connection, example_id: str, restored: Sequence[Label]) -> int:
        """Insert the labels of an imported export that the bank does not hold yet (by label id); how many."""
        if not restored:
            return 0
        owners = dict(
            conn.execute(select(labels.c.id, labels.c.example_id).where(labels.c.id.in_({r.id for r in restored})))
            .tuples()
            .all()
        )
        elsewhere = sorted(label_id for label_id, owner in owners.items() if owner != example_id)
        if elsewhere:
            raise Conflict(f"label id {elsewhere[0]!r} belongs to another example", field="labels")
        known = set(owners)
        added = []
        for label in restored:
            if label.id not in known:  # a label id given twice is one label: the first copy is kept
                known.add(label.id)
                added.append(label)
        for label in added:
            conn.execute(insert(labels).values(**dict(label.model_dump(), example_id=example_id)))
        return len(added)
