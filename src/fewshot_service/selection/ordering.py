"""Where each chosen example sits in the prompt."""

from __future__ import annotations

import math

from .base import Pick


def arrange(picks: list[Pick], order: str, difficulties: dict[int, float] | None = None) -> list[Pick]:
    """most_similar_last puts the closest example right before the user's prompt, where models weigh it
    most; ascending_difficulty builds up from the easiest (unknown difficulty last)."""
    ascending = sorted(picks, key=lambda p: p.relevance)
    if order == "most_similar_last":
        return ascending
    if order == "most_similar_first":
        return ascending[::-1]
    if order == "ascending_difficulty":
        known = difficulties or {}

        def level(pick: Pick) -> float:
            value = known.get(pick.position, math.nan)
            return math.inf if math.isnan(value) else value

        return sorted(ascending, key=level)
    raise ValueError(f"unknown order {order!r}")
