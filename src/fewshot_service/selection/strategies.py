"""knn and mmr: the two selection strategies of the core service."""

from __future__ import annotations

import numpy as np

from .base import Pick


def _redundancies(vectors: np.ndarray, order: list[int]) -> list[float]:
    """For each pick, its highest similarity to the picks before it (0 for the first)."""
    result = [0.0] * min(1, len(order))
    for n in range(1, len(order)):
        result.append(float(np.max(vectors[order[:n]] @ vectors[order[n]])))
    return result


def knn(vectors: np.ndarray, relevance: np.ndarray, k: int, diversity: float) -> list[Pick]:
    """The k most relevant candidates; diversity is ignored."""
    order = [int(i) for i in np.argsort(-relevance, kind="stable")[:k]]
    return [Pick(i, float(relevance[i]), r) for i, r in zip(order, _redundancies(vectors, order), strict=True)]


def mmr(vectors: np.ndarray, relevance: np.ndarray, k: int, diversity: float) -> list[Pick]:
    """Maximal marginal relevance: each pick maximises (1-d)·relevance − d·(similarity to picks so far)."""
    count = len(relevance)
    if count == 0:
        return []
    weight = 1.0 - diversity
    similarity = vectors @ vectors.T
    chosen: list[int] = []
    redundancy = np.zeros(count, dtype=np.float32)  # max similarity to anything chosen so far
    available = np.ones(count, dtype=bool)
    picks: list[Pick] = []
    for _ in range(min(k, count)):
        marginal = weight * relevance - diversity * redundancy
        marginal[~available] = -np.inf
        best = int(np.argmax(marginal))
        picks.append(Pick(best, float(relevance[best]), float(redundancy[best]) if chosen else 0.0))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, similarity[best])
    return picks
