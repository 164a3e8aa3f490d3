"""Types shared by the selection strategies: pure functions over a pool of candidates, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .preferences import NeighbourVote


@dataclass(frozen=True)
class Candidates:
    """The filtered pool a strategy chooses from, best first by relevance."""

    vectors: np.ndarray  # (m, d), L2-normalised
    relevance: np.ndarray  # (m,) cosine similarity to the prompt
    score: np.ndarray  # (m,) relevance after the topic and difficulty preferences
    topics: list[str | None]
    difficulties: np.ndarray  # (m,) float, nan where unknown
    texts: list[str] | None = None  # inputs, for lexical strategies
    query_text: str | None = None  # the prompt, for lexical strategies
    costs: np.ndarray | None = None  # (m,) tokens per candidate, when a budget applies
    topic_vote: NeighbourVote | None = None  # the nearest neighbours' topic vote, computed once per selection

    def __len__(self) -> int:
        return len(self.relevance)


@dataclass(frozen=True)
class Params:
    k: int
    diversity: float
    max_tokens: int | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    # The request steers difficulty (a target or "match"): difficulty is then the preferences' job, and the
    # stratified strategy does not also keep the neighbourhood's mix of levels.
    difficulty_steered: bool = False
    neighbours: int = 20  # the nearest candidates that vote on the prompt's topic (FEWSHOT_PREFERENCE_NEIGHBOURS)


@dataclass(frozen=True)
class Pick:
    """One chosen candidate: its position in the pool, and why it was chosen."""

    position: int
    relevance: float  # cosine similarity to the prompt
    score: float  # relevance after preferences
    redundancy: float  # highest cosine similarity to an example picked before it (0 for the first)
    reason: str


class Budget:
    """Token accounting during a greedy choice: a candidate is available only while it still fits."""

    def __init__(self, costs: np.ndarray | None, limit: int | None) -> None:
        self.costs = costs
        self.remaining = limit

    def fits(self, count: int) -> np.ndarray:
        if self.costs is None or self.remaining is None:
            return np.ones(count, dtype=bool)
        return np.asarray(self.costs <= self.remaining)

    def take(self, position: int) -> None:
        if self.costs is not None and self.remaining is not None:
            self.remaining -= int(self.costs[position])


def similarity_to(vectors: np.ndarray, position: int) -> np.ndarray:
    """Cosine similarity of every candidate to one of them.

    Greedy strategies need only the rows of their picks, so they take them one matrix-vector product at a
    time: a whole m×m Gram matrix of a large pool goes to multi-threaded BLAS, which stalls while the other
    core serves requests; k small products never do."""
    return np.asarray(vectors @ vectors[position])


def redundancy_of(vectors: np.ndarray, chosen: list[int], position: int) -> float:
    return float(np.max(vectors[chosen] @ vectors[position])) if chosen else 0.0


def pick_at(pool: Candidates, chosen: list[int], n: int, reason: str) -> Pick:
    """The n-th of the chosen positions as a Pick, its redundancy measured against the picks before it."""
    position = chosen[n]
    return Pick(
        position,
        float(pool.relevance[position]),
        float(pool.score[position]),
        redundancy_of(pool.vectors, chosen[:n], position),
        reason,
    )


PickFunction = Callable[[Candidates, Params], list[Pick]]


@dataclass(frozen=True)
class Strategy:
    """A strategy and what it needs from the pipeline, declared rather than recognised by name."""

    name: str
    pick: PickFunction
    # Diversifying strategies choose among a pool of pool_factor·k filtered candidates; others need k.
    needs_pool: bool
    description: str
    needs_texts: bool = False  # the pipeline fetches the pool's inputs from the bank
    uses_diversity: bool = False  # whether Params.diversity changes its choice
    pool_scale: int = 1  # a strategy that diversifies inside groups needs a deeper pool: pool_scale·pool_factor·k
    sampled_pool: bool = False  # its pool is a uniform sample of the filtered examples, not the nearest ones

    def candidates(self, k: int, pool_factor: int) -> int:
        return k * pool_factor * self.pool_scale if self.needs_pool else k
