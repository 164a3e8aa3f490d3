"""Curator labels (append-only) and the audit history of examples."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ..errors import Conflict, NotFound
from ..models import Example, HistoryEntry, Label, LabelCreate
from .base import SqlBase, now, row_to_example, row_to_label, utc
from .schema import audit, examples, labels, leases

# (the example, its labels including the new one) -> the example fields to change (status, quality)
Policy = Callable[[Example, list[Label]], dict[str, Any]]

# What an annotator judges. A label given on an older version stands unless one of these changed since: other
# raters' labels move status and quality (and the version) without changing what was judged.
JUDGED_FIELDS = frozenset({"input", "output", "steps"})


class LabelStore(SqlBase):
    def add_label(
        self, example_id: str, label: LabelCreate, *, check: Callable[[Example, LabelCreate], None], policy: Policy,
        actor: str, recorded_by: str | None = None, override_lease: bool = False, seen_version: int | None = None,
    ) -> tuple[Label, Example]:  # fmt: skip
        """Append a label and let the policy update the example's status and quality, in one transaction.
        An item leased to another annotator is refused (409 naming the holder) unless override_lease; a label
        given on seen_version is refused (409) when what it judged has been edited since."""
        with self._transaction() as conn:
            row = self._live_row(conn, example_id, for_write=True)  # locked: no edit lands before the label
            if seen_version is not None and seen_version != row["version"]:
                self._refuse_if_judged_fields_changed(conn, row, seen_version)
            check(row_to_example(row), label)
            if not override_lease:
                self._refuse_others_lease(conn, example_id, label.annotator or "")
            revision = self._bump_revision(conn)
            stored = Label(
                id=uuid.uuid4().hex, example_id=example_id, created_at=now(), recorded_by=recorded_by,
                **label.model_dump(),
            )  # fmt: skip
            conn.execute(insert(labels).values(**stored.model_dump()))
            # The annotator beside the actor: an admin labelling for someone is the actor, not the rater.
            entry: dict[str, Any] = {"label_id": stored.id, "annotator": stored.annotator, "verdict": stored.verdict,
                                     "score": stored.score}  # fmt: skip
            example = self._apply_policy(conn, row, policy, actor, "label", entry, revision)
        return stored, example

    def withdraw_label(
        self, example_id: str, label_id: str, *, owner: str | None, policy: Policy, actor: str
    ) -> Example:
        """Mark a label withdrawn (kept, no longer counted) and let the policy recompute the example.
        owner: only a label of this annotator may be withdrawn (None: any, for admins); others are 404."""
        with self._transaction() as conn:
            row = self._live_row(conn, example_id, for_write=True)
            found = conn.execute(
                select(labels).where(
                    labels.c.id == label_id, labels.c.example_id == example_id, labels.c.withdrawn_at.is_(None)
                )
            ).mappings().first()  # fmt: skip
            if found is None or (owner is not None and found["annotator"] != owner):
                # Someone else's label answers as a missing one: no probing which labels exist.
                raise NotFound(f"no label {label_id!r} of yours on example {example_id!r}", field="label_id")
            revision = self._bump_revision(conn)
            conn.execute(update(labels).where(labels.c.id == label_id).values(withdrawn_at=now(), withdrawn_by=actor))
            entry: dict[str, Any] = {"label_id": label_id, "annotator": found["annotator"]}
            return self._apply_policy(conn, row, policy, actor, "unlabel", entry, revision)

    def _apply_policy(
        self, conn: Connection, row: Any, policy: Policy, actor: str, action: str, entry: dict[str, Any], revision: int
    ) -> Example:
        """Set the status and quality the example's counted labels give it, and record the change."""
        example_id = row["id"]
        changes = policy(row_to_example(row), self._labels(conn, example_id))
        changes = {name: value for name, value in changes.items() if row[name] != value}
        entry.update({name: [row[name], value] for name, value in changes.items()})
        if changes:
            conn.execute(
                update(examples)
                .where(examples.c.id == example_id)
                .values(**changes, version=row["version"] + 1, updated_at=now(), revision=revision)
            )
        self._audit(conn, example_id, actor, action, entry, revision)
        return row_to_example(conn.execute(select(examples).where(examples.c.id == example_id)).mappings().one())

    @staticmethod
    def _refuse_if_judged_fields_changed(conn: Connection, row: Any, seen_version: int) -> None:
        """Refuse (409) a label given on seen_version if the input, output or steps changed since then."""
        reason = _judged_change_since(conn, row["id"], row["version"], seen_version)
        if reason is not None:
            raise Conflict(
                f"example {row['id']!r} is at version {row['version']}: {reason}; the label was given on version "
                f"{seen_version}, look at it again before labelling",
                field="version",
            )

    @staticmethod
    def _refuse_others_lease(conn: Connection, example_id: str, annotator: str) -> None:
        held = conn.execute(
            select(leases.c.annotator, leases.c.expires_at).where(
                leases.c.item_id == example_id, leases.c.annotator != annotator, leases.c.expires_at > now()
            )
        ).first()
        if held is not None:
            raise Conflict(
                f"example {example_id!r} is leased to {held.annotator!r} for review until "
                f"{utc(held.expires_at).isoformat()}; only they or an admin may label it meanwhile",
                field="lease",
            )

    @staticmethod
    def _labels(conn: Connection, example_id: str) -> list[Label]:
        """The labels that count (not withdrawn), oldest first."""
        query = (
            select(labels)
            .where(labels.c.example_id == example_id, labels.c.withdrawn_at.is_(None))
            .order_by(labels.c.created_at, labels.c.id)
        )
        return [row_to_label(row) for row in conn.execute(query).mappings()]

    def labels_of(self, example_id: str) -> list[Label]:
        """Every label of the example, withdrawn ones included (marked), oldest first."""
        with self._connect() as conn:
            self._existing(conn, example_id)
            query = select(labels).where(labels.c.example_id == example_id).order_by(labels.c.created_at, labels.c.id)
            return [row_to_label(row) for row in conn.execute(query).mappings()]

    def labels_by(self, annotator: str, since: datetime) -> int:
        """How many labels the annotator gave since `since` that still count (not withdrawn)."""
        query = select(func.count()).where(
            labels.c.annotator == annotator, labels.c.created_at >= since, labels.c.withdrawn_at.is_(None)
        )
        with self._connect() as conn:
            return int(conn.execute(query).scalar_one())

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


def _judged_change_since(conn: Connection, example_id: str, version: int, seen_version: int) -> str | None:
    """Walk the example's history back from `version`, one version per entry that moved it, to seen_version:
    what changed in the judged fields on the way, or None when only status, quality, topic and the like did."""
    if seen_version > version:
        return f"it has never been at version {seen_version}"
    entries = conn.execute(
        select(audit.c.action, audit.c.changes).where(audit.c.example_id == example_id).order_by(audit.c.seq.desc())
    )
    for action, changes in entries:
        if version == seen_version:
            return None
        if action in ("label", "unlabel") and not {"status", "quality"} & changes.keys():
            continue  # a label that left status and quality as they were made no new version
        if action not in ("label", "unlabel", "update", "import"):  # its creation: seen_version is older
            break
        judged = sorted(JUDGED_FIELDS & changes.keys())
        if judged:
            return f"its {' and '.join(judged)} changed since"
        version -= 1
    return None if version == seen_version else "its history does not reach that version"
