"""How many examples each (topic, difficulty) cell of the bank holds: what LLM expansion fills up.

A function over the bank rather than a method on SqlBank, so it adds a query without changing the
class that other parts of the bank extend.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func, select

from .base import SqlBase
from .schema import examples

Cell = tuple[str, int]


def cell_counts(bank: SqlBase, statuses: Sequence[str] = ("approved", "pending")) -> dict[Cell, int]:
    """Live examples per (topic, difficulty) whose status is one of `statuses`.

    Every cell that holds a live example appears, with 0 when none of its examples counts (e.g. all
    rejected): such a cell is present in the bank and empty, the first gap to fill. Examples without a
    topic or a difficulty belong to no cell.
    """
    counted = func.sum(case((examples.c.status.in_(list(statuses)), 1), else_=0))
    query = (
        select(examples.c.topic, examples.c.difficulty, counted)
        .where(
            examples.c.deleted_at.is_(None),
            examples.c.topic.is_not(None),
            examples.c.difficulty.is_not(None),
        )
        .group_by(examples.c.topic, examples.c.difficulty)
    )
    with bank._connect() as conn:
        return {(row[0], int(row[1])): int(row[2] or 0) for row in conn.execute(query)}
