"""Preference pairs with their labels, and the review queue's leases."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select

from ..errors import Conflict, NotFound
from ..models import Example, Preference, PreferenceCreate, PreferenceLabel, PreferenceLabelCreate
from .base import SqlBase, now, row_to_example, utc
from .schema import examples, labels, leases, preference_labels, preferences
from .stats_sql import uncertainty_order


class PreferenceStore(SqlBase):
    def add_preference(self, pair: PreferenceCreate) -> Preference:
        stored = Preference(id=uuid.uuid4().hex, created_at=now(), **pair.model_dump())
        with self._transaction() as conn:
            self._bump_revision(conn)
            values = stored.model_dump()
            conn.execute(
                insert(preferences).values(**{("meta" if k == "metadata" else k): v for k, v in values.items()})
            )
        return stored

    def add_preference_label(self, preference_id: str, label: PreferenceLabelCreate) -> PreferenceLabel:
        with self._transaction() as conn:
            if conn.execute(select(preferences.c.id).where(preferences.c.id == preference_id)).first() is None:
                raise NotFound(f"no preference pair with id {preference_id!r}", field="id")
            self._bump_revision(conn)
            stored = PreferenceLabel(
                id=uuid.uuid4().hex, preference_id=preference_id, created_at=now(), **label.model_dump()
            )
            conn.execute(insert(preference_labels).values(**stored.model_dump()))
        return stored

    def next_preference(self, annotator: str, skip: Sequence[str] = ()) -> Preference | None:
        """The oldest pair this annotator has not labelled (nor skipped), None when there is none."""
        labelled = select(preference_labels.c.preference_id).where(preference_labels.c.annotator == annotator)
        query = select(preferences).where(preferences.c.id.not_in(labelled))
        if skip:
            query = query.where(preferences.c.id.not_in(list(skip)))
        with self._connect() as conn:
            row = conn.execute(query.order_by(preferences.c.created_at, preferences.c.id).limit(1)).mappings().first()
        if row is None:
            return None
        fields = {("metadata" if k == "meta" else k): v for k, v in row.items()}
        return Preference.model_validate({**fields, "created_at": utc(fields["created_at"])})

    def iter_preference_labels(self) -> Iterator[tuple[dict[str, Any], PreferenceLabel]]:
        """(the pair's prompt and responses, one label) for every label, oldest first."""
        query = (
            select(preferences.c.prompt, preferences.c.response_a, preferences.c.response_b, preference_labels)
            .join(preferences, preferences.c.id == preference_labels.c.preference_id)
            .order_by(preference_labels.c.created_at, preference_labels.c.id)
        )
        with self._connect() as conn:
            for row in conn.execute(query).mappings():
                pair = {"prompt": row["prompt"], "a": row["response_a"], "b": row["response_b"]}
                label = PreferenceLabel(
                    id=row["id"], preference_id=row["preference_id"], annotator=row["annotator"], choice=row["choice"],
                    shown_first=row["shown_first"], rationale=row["rationale"], created_at=utc(row["created_at"]),
                )  # fmt: skip
                yield pair, label


class ReviewStore(SqlBase):
    def lease_next(
        self, annotator: str, ttl_seconds: float, skip: Collection[str] = ()
    ) -> tuple[Example, str, datetime] | None:
        """The next example this annotator should label, leased to them; None when nothing needs them.

        Order: pending LLM-generated examples, other pending examples, then examples whose labels
        disagree; within the pending groups, predicted_quality nearest 0.5 first once a quality model has
        scored them. Never one the annotator already labelled, never one leased to someone else, never one
        they skipped (a lease they hold on it stays: a client may lease the next item ahead; release ends it).
        """
        stamp = now()
        skip = list(skip)
        with self._transaction() as conn:
            conn.execute(delete(leases).where(leases.c.expires_at <= stamp))
            counted = labels.c.withdrawn_at.is_(None)
            labelled_by_me = select(labels.c.example_id).where(labels.c.annotator == annotator, counted)
            leased_to_others = select(leases.c.item_id).where(leases.c.annotator != annotator)
            open_items = [examples.c.deleted_at.is_(None), examples.c.id.not_in(labelled_by_me),
                          examples.c.id.not_in(leased_to_others), examples.c.id.not_in(skip)]  # fmt: skip
            mine = select(leases.c.item_id).where(leases.c.annotator == annotator)
            disagreeing = (
                select(labels.c.example_id)
                .where(counted)
                .group_by(labels.c.example_id)
                .having(func.count(labels.c.verdict.distinct()) > 1)
            )
            candidates: list[tuple[str, list[Any]]] = [
                ("pending_llm", [examples.c.status == "pending", examples.c.source == "llm"]),
                ("pending", [examples.c.status == "pending"]),
                ("disagreement", [examples.c.id.in_(disagreeing)]),
            ]
            # An item already leased to this annotator comes back first (a repeated "next" is idempotent).
            for extra in ([examples.c.id.in_(mine)], list[Any]()):
                for reason, conditions in candidates:
                    query = select(examples).where(*open_items, *conditions, *extra)
                    # Among pending items the quality model's most uncertain come first (active learning:
                    # their labels teach it most); unscored ones follow, oldest first as before.
                    first = uncertainty_order() if reason != "disagreement" else []
                    ordered = query.order_by(*first, examples.c.created_at, examples.c.id)
                    row = conn.execute(ordered.limit(1)).mappings().first()
                    if row is None:
                        continue
                    expires = stamp + timedelta(seconds=ttl_seconds)
                    conn.execute(delete(leases).where(leases.c.item_id == row["id"]))
                    conn.execute(insert(leases).values(item_id=row["id"], annotator=annotator, expires_at=expires))
                    return row_to_example(row), reason, expires
        return None

    def release_lease(self, example_id: str, annotator: str | None) -> None:
        """Hand the item back to the queue: annotator's lease on it, or anyone's when annotator is None."""
        held = [leases.c.item_id == example_id] + ([leases.c.annotator == annotator] if annotator is not None else [])
        with self._transaction() as conn:
            conn.execute(delete(leases).where(*held))

    def give_up_lease(self, example_id: str, annotator: str | None) -> None:
        """End the review lease on an example; annotator: only theirs (409 naming the holder when another
        annotator holds it), None for an admin. No lease (or an expired one) is nothing to do."""
        with self._transaction() as conn:
            self._live_row(conn, example_id, for_write=False)
            held = conn.execute(
                select(leases.c.annotator, leases.c.expires_at).where(
                    leases.c.item_id == example_id, leases.c.expires_at > now()
                )
            ).first()
            if held is not None and annotator is not None and held.annotator != annotator:
                raise Conflict(
                    f"example {example_id!r} is leased to {held.annotator!r} until "
                    f"{utc(held.expires_at).isoformat()}; only they or an admin may release it",
                    field="lease",
                )
            conn.execute(delete(leases).where(leases.c.item_id == example_id))
