"""The pure selection core on hand-made vectors whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from fewshot_service.selection import STRATEGIES, Pick, arrange, knn, mmr


def unit(*rows: list[float]) -> np.ndarray:
    matrix = np.array(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# Candidates 0 and 1 are the same direction (a duplicate pair), 2 is a different, slightly less relevant one.
VECTORS = unit([1, 0, 0], [1, 0.001, 0], [0.6, 0.8, 0], [0, 0, 1])
RELEVANCE = np.array([0.90, 0.89, 0.80, 0.10], dtype=np.float32)


def test_knn_takes_the_most_relevant_even_when_redundant() -> None:
    picks = knn(VECTORS, RELEVANCE, 2, 0.5)
    assert [p.position for p in picks] == [0, 1]
    assert picks[1].redundancy == pytest.approx(1.0, abs=1e-3)


def test_mmr_never_picks_both_of_a_duplicate_pair() -> None:
    picks = mmr(VECTORS, RELEVANCE, 2, 0.3)
    assert [p.position for p in picks] == [0, 2]
    assert picks[0].redundancy == 0.0
    assert picks[1].redundancy == pytest.approx(0.6, abs=1e-3)


def test_mmr_with_zero_diversity_is_knn() -> None:
    assert [p.position for p in mmr(VECTORS, RELEVANCE, 3, 0.0)] == [p.position for p in knn(VECTORS, RELEVANCE, 3, 0)]


def test_mmr_with_full_diversity_spreads_out() -> None:
    # Only redundancy counts after the first pick: the orthogonal, barely relevant vector comes second.
    assert [p.position for p in mmr(VECTORS, RELEVANCE, 2, 1.0)][1] == 3


def test_strategies_return_at_most_the_candidates_they_get() -> None:
    for strategy in STRATEGIES.values():
        assert len(strategy.pick(VECTORS[:2], RELEVANCE[:2], 4, 0.3)) == 2
        assert strategy.pick(VECTORS[:0], RELEVANCE[:0], 4, 0.3) == []


def test_mmr_pool_is_at_least_five_times_k() -> None:
    assert STRATEGIES["mmr"].candidates(4, 5) == 20
    assert STRATEGIES["knn"].candidates(4, 5) == 4


def test_arrange_orders_by_relevance() -> None:
    picks = [Pick(0, 0.5, 0), Pick(1, 0.9, 0), Pick(2, 0.7, 0)]
    assert [p.relevance for p in arrange(picks, "most_similar_last")] == [0.5, 0.7, 0.9]
    assert [p.relevance for p in arrange(picks, "most_similar_first")] == [0.9, 0.7, 0.5]
    with pytest.raises(ValueError):
        arrange(picks, "sideways")
