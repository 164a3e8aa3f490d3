"""Seed examples for a generation prompt: approved examples of the cell, as different from each other as possible.

Seeds come in tiers: the cell itself (topic, difficulty) first; when it holds fewer than wanted, the same
topic at the nearest difficulties, then other topics at the same difficulty, then anything approved. A
lower tier is used up before a higher one is touched, so neighbours only fill in for a thin cell.

Within a tier the choice is MMR with a random relevance: each pick trades a random preference against its
similarity to the seeds already chosen. The randomness makes successive calls for one cell show the model
different seeds (and so get different examples back); the similarity term keeps each prompt's seeds
spread out instead of several variants of one problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..bank import SqlBank
from ..curation.types import ExampleQuery
from ..models import Example, Status

# How much the random preference weighs against diversity; low, so diversity dominates and the random
# part mostly decides the first pick and ties.
RANDOM_WEIGHT = 0.3
POOL_LIMIT = 200  # examples read per tier: plenty to choose a handful of diverse ones from


@dataclass(frozen=True)
class SeedPool:
    """Candidate seeds of one cell with their stored embeddings and tiers (0 = the cell itself)."""

    examples: list[Example]
    vectors: np.ndarray
    tiers: np.ndarray

    def __len__(self) -> int:
        return len(self.examples)


def _tiers(topic: str, difficulty: int) -> Iterator[ExampleQuery]:
    approved: list[Status] = ["approved"]  # seeds are reviewed work only: generated text is never imitated unchecked
    yield ExampleQuery(topic=[topic], difficulty_min=difficulty, difficulty_max=difficulty, status=approved)
    for distance in range(1, 5):
        levels = [d for d in (difficulty - distance, difficulty + distance) if 1 <= d <= 5]
        if levels:
            yield ExampleQuery(topic=[topic], difficulty_min=min(levels), difficulty_max=max(levels), status=approved)
    yield ExampleQuery(difficulty_min=difficulty, difficulty_max=difficulty, status=approved)
    yield ExampleQuery(status=approved)


def gather_pool(bank: SqlBank, model_id: str, topic: str, difficulty: int, want: int) -> SeedPool:
    """Approved candidates for the cell, tier by tier until at least `want` are found (or the bank is exhausted)."""
    found: dict[str, tuple[Example, int]] = {}
    for tier, query in enumerate(_tiers(topic, difficulty)):
        page, _ = bank.list_examples(query, None, POOL_LIMIT)
        for example in page:
            # A "distance 2" query spans d-2..d+2; what an earlier tier already holds keeps its tier.
            found.setdefault(example.id, (example, tier))
        if len(found) >= want:
            break
    rows, _ = bank.index_rows(list(found), model_id)  # the stored embeddings, so nothing is re-embedded
    vectors = {row.id: row.embedding for row in rows}
    kept = [(example, tier) for example, tier in found.values() if example.id in vectors]
    if not kept:
        return SeedPool([], np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64))
    return SeedPool(
        [example for example, _ in kept],
        np.stack([vectors[example.id] for example, _ in kept]).astype(np.float32, copy=False),
        np.array([tier for _, tier in kept], dtype=np.int64),
    )


def choose_seeds(pool: SeedPool, k: int, rng: np.random.Generator) -> list[Example]:
    """Up to k seeds, lower tiers first, each tier's picks by MMR over a random relevance."""
    if not len(pool) or k <= 0:
        return []
    relevance = rng.random(len(pool))
    closest = np.full(len(pool), -1.0)  # each candidate's highest similarity to a chosen seed
    chosen: list[int] = []
    for tier in np.unique(pool.tiers):
        available = [int(n) for n in np.flatnonzero(pool.tiers == tier)]
        while available and len(chosen) < k:
            candidates = np.array(available)
            penalty = closest[candidates] if chosen else np.zeros(len(candidates))
            scores = RANDOM_WEIGHT * relevance[candidates] - (1 - RANDOM_WEIGHT) * penalty
            pick = int(candidates[int(np.argmax(scores))])
            chosen.append(pick)
            available.remove(pick)
            closest = np.maximum(closest, pool.vectors @ pool.vectors[pick])
        if len(chosen) >= k:
            break
    return [pool.examples[n] for n in chosen]
