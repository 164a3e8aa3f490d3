"""Where each chosen example sits in the prompt."""

from __future__ import annotations

from .base import Pick


def arrange(picks: list[Pick], order: str) -> list[Pick]:
    """most_similar_last puts the closest example right before the user's prompt, where models weigh it most."""
    ascending = sorted(picks, key=lambda p: p.relevance)
    if order == "most_similar_last":
        return ascending
    if order == "most_similar_first":
        return ascending[::-1]
    raise ValueError(f"unknown order {order!r}")
