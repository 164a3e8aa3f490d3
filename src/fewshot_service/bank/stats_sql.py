"""Reads for monitoring the bank (GROUP BY counts, label timelines, embeddings) and the predicted-quality column.

Everything here reads live examples only (deleted ones are tombstones), except the label timeline, where a
label counts whenever it was given. The monitoring logic itself lives in stats.py, agreement.py and
quality.py; this mixin only moves rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Text, bindparam, case, cast, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from ..models import Label
from .base import SqlBase, row_to_label
from .schema import examples, labels

_LIVE = examples.c.deleted_at.is_(None)


class CellCount(NamedTuple):
    topic: str | None
    difficulty: int | None
    source: str
    status: str
    n: int  # ("count" would shadow tuple.count)


class DayCount(NamedTuple):
    day: str  # YYYY-MM-DD, UTC
    labels: int
    annotators: int
    examples: int


class EmbeddedExample(NamedTuple):
    """What the quality model and the duplicate clusters need of an example."""

    id: str
    input: str
    output: str
    steps: list[str] | None
    source: str
    status: str
    topic: str | None
    embedding: np.ndarray


class ScoredExample(NamedTuple):
    id: str
    predicted_quality: float | None
    status: str
    source: str
    topic: str | None


def uncertainty_order() -> list[ColumnElement[Any]]:
    """ORDER BY terms putting scored examples first, those with predicted quality nearest 0.5 first."""
    scored_last = case((examples.c.predicted_quality.is_(None), 1), else_=0)
    return [scored_last, func.abs(examples.c.predicted_quality - 0.5)]


class StatsStore(SqlBase):
    # -- shape of the bank --------------------------------------------------------------------
    def cell_counts(self) -> list[CellCount]:
        """Live examples counted by topic × difficulty × source × status (empty cells are absent)."""
        keys = (examples.c.topic, examples.c.difficulty, examples.c.source, examples.c.status)
        # NULLs sort first on SQLite and last on PostgreSQL unless told: the same bank gives the same list.
        query = (
            select(*keys, func.count()).where(_LIVE).group_by(*keys).order_by(*(k.asc().nulls_first() for k in keys))
        )
        with self._connect() as conn:
            return [CellCount(*row) for row in conn.execute(query).all()]

    def label_days(self) -> list[DayCount]:
        """Labels given per UTC day that still count, with how many annotators and examples they came from.
        A withdrawn label (an undo) is not counted, as in an annotator's progress and the agreement report."""
        day = self._day(labels.c.created_at)
        query = (
            select(
                day.label("day"),
                func.count(),
                func.count(labels.c.annotator.distinct()),
                func.count(labels.c.example_id.distinct()),
            )
            .where(labels.c.withdrawn_at.is_(None))
            .group_by(day)
            .order_by(day)
        )
        with self._connect() as conn:
            return [DayCount(str(row[0])[:10], row[1], row[2], row[3]) for row in conn.execute(query).all()]

    def _day(self, column: Any) -> ColumnElement[Any]:
        # Timestamps are stored in UTC; SQLite keeps them as ISO text, PostgreSQL as timestamptz.
        if self.engine.dialect.name == "sqlite":
            return func.date(column)
        return func.date(func.timezone("UTC", column))

    def embedding_model_in_use(self) -> str | None:
        """The embedding model most live examples were embedded with (None when nothing is embedded)."""
        query = (
            select(examples.c.embedding_model)
            .where(_LIVE, examples.c.embedding_model.is_not(None))
            .group_by(examples.c.embedding_model)
            .order_by(func.count().desc())
            .limit(1)
        )
        with self._connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else str(value)

    def iter_embedded(self, model_id: str, batch_size: int = 5000) -> Iterator[EmbeddedExample]:
        """Live examples embedded with model_id, with the text fields the quality model reads."""
        cols = (
            examples.c.id,
            examples.c.input,
            examples.c.output,
            examples.c.steps,
            examples.c.source,
            examples.c.status,
            examples.c.topic,
            examples.c.embedding,
        )
        for row in self._embedded_rows(cols, model_id, batch_size):
            vector = np.frombuffer(row.embedding, dtype=np.float32)
            yield EmbeddedExample(row.id, row.input, row.output, row.steps, row.source, row.status, row.topic, vector)

    # -- labels ---------------------------------------------------------------------------------
    def all_labels(self, *, live_only: bool = True) -> list[Label]:
        """Every curator label that counts (not withdrawn), oldest first; by default only those on examples
        that are not deleted."""
        query = select(labels).where(labels.c.withdrawn_at.is_(None)).order_by(labels.c.created_at, labels.c.id)
        if live_only:
            query = query.where(labels.c.example_id.in_(select(examples.c.id).where(_LIVE)))
        with self._connect() as conn:
            return [row_to_label(row) for row in conn.execute(query).mappings()]

    def gold_metadata(self) -> dict[str, Any]:
        """example id -> metadata["gold"] for live examples that carry one (see agreement.py)."""
        # JSON path queries differ between SQLite and PostgreSQL; the text of the JSON works on both
        # to narrow the scan, and Python reads the value.
        query = select(examples.c.id, examples.c.meta).where(
            _LIVE, cast(examples.c.meta, Text).contains('"gold"', autoescape=True)
        )
        with self._connect() as conn:
            return {row.id: row.meta["gold"] for row in conn.execute(query).all() if "gold" in (row.meta or {})}

    # -- predicted quality ----------------------------------------------------------------------
    def replace_predicted_quality(self, scores: Mapping[str, float | None]) -> list[str]:
        """Set every live example's predicted_quality to scores.get(id) (None when absent); returns the ids
        whose value changed. The rows get a new bank revision (the change feed sees them) but not a new
        version: the value is service-owned, and a curator's pending edit must not get a spurious 409."""
        with self._transaction() as conn:
            current = dict(conn.execute(select(examples.c.id, examples.c.predicted_quality).where(_LIVE)).all())
            changed = [i for i, old in current.items() if scores.get(i) != old]
            if not changed:
                return []
            revision = self._bump_revision(conn)
            statement = (
                update(examples)
                .where(examples.c.id == bindparam("b_id"))
                .values(predicted_quality=bindparam("b_value"), revision=revision)
            )
            conn.execute(statement, [{"b_id": i, "b_value": scores.get(i)} for i in changed])
        return changed

    def scored_examples(self, statuses: Sequence[str] | None, limit: int) -> list[ScoredExample]:
        """Live examples with their predicted quality, most uncertain first (unscored last)."""
        query = select(
            examples.c.id, examples.c.predicted_quality, examples.c.status, examples.c.source, examples.c.topic
        ).where(_LIVE)
        if statuses:
            query = query.where(examples.c.status.in_(list(statuses)))
        query = query.order_by(*uncertainty_order(), examples.c.created_at, examples.c.id).limit(limit)
        with self._connect() as conn:
            return [ScoredExample(*row) for row in conn.execute(query).all()]
