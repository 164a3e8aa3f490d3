"""The pure selection core on hand-made pools whose right answer is known."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from fewshot_service.models import Example
from fewshot_service.rendering import as_messages, as_text
from fewshot_service.selection import (
    STRATEGIES,
    Candidates,
    Params,
    Pick,
    apply_preferences,
    arrange,
    coverage,
    dpp,
    hybrid,
    knn,
    mmr,
    random_pick,
)


def unit(*rows: list[float]) -> np.ndarray:
    matrix = np.array(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def pool(
    vectors: np.ndarray,
    relevance: list[float],
    topics: list[str | None] | None = None,
    difficulties: list[float] | None = None,
    texts: list[str] | None = None,
    costs: list[int] | None = None,
    query: str | None = None,
) -> Candidates:
    count = len(relevance)
    rel = np.array(relevance, dtype=np.float64)
    return Candidates(
        vectors=vectors,
        relevance=rel,
        score=rel.copy(),
        topics=topics or [None] * count,
        difficulties=np.array(difficulties if difficulties is not None else [np.nan] * count, dtype=np.float64),
        texts=texts,
        query_text=query,
        costs=np.array(costs) if costs is not None else None,
    )


# Candidates 0 and 1 are the same direction (a duplicate pair), 2 is different and slightly less relevant.
DUPLICATES = pool(unit([1, 0, 0], [1, 0.001, 0], [0.6, 0.8, 0], [0, 0, 1]), [0.90, 0.89, 0.80, 0.10])


def positions(picks: list[Pick]) -> list[int]:
    return [p.position for p in picks]


def test_knn_takes_the_most_relevant_even_when_redundant() -> None:
    picks = knn(DUPLICATES, Params(2, 0.5))
    assert positions(picks) == [0, 1]
    assert picks[1].redundancy == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("strategy", [mmr, dpp])
def test_diversifying_strategies_never_pick_both_of_a_duplicate_pair(strategy: object) -> None:
    picks = strategy(DUPLICATES, Params(2, 0.3))  # type: ignore[operator]
    assert positions(picks) == [0, 2]
    assert picks[0].redundancy == 0.0 and picks[1].redundancy == pytest.approx(0.6, abs=1e-3)


def test_dpp_still_returns_k_when_only_duplicates_are_left() -> None:
    assert sorted(positions(dpp(DUPLICATES, Params(4, 0.5)))) == [0, 1, 2, 3]


def test_zero_diversity_is_knn() -> None:
    for strategy in (mmr, dpp):
        assert positions(strategy(DUPLICATES, Params(3, 0.0))) == positions(knn(DUPLICATES, Params(3, 0.0)))


def test_mmr_with_full_diversity_spreads_out() -> None:
    assert positions(mmr(DUPLICATES, Params(2, 1.0)))[1] == 3


TWO_CLUSTERS = unit([1, 0.02, 0], [1, 0, 0.02], [1, 0.01, 0.01], [1, 0.03, 0.0], [0, 1, 0.02], [0, 1, 0])
CLUSTER_RELEVANCE = [0.95, 0.94, 0.93, 0.92, 0.60, 0.59]


def test_coverage_takes_from_both_clusters_when_topics_are_absent() -> None:
    picks = coverage(pool(TWO_CLUSTERS, CLUSTER_RELEVANCE), Params(2, 0.3))
    assert positions(picks) == [0, 4]  # knn would take 0 and 1, both from the first cluster
    assert positions(knn(pool(TWO_CLUSTERS, CLUSTER_RELEVANCE), Params(2, 0.3))) == [0, 1]


def test_coverage_spreads_over_topic_and_difficulty_groups() -> None:
    topics = ["algebra", "algebra", "algebra", "geometry", "geometry", "algebra"]
    levels = [1.0, 1.0, 3.0, 2.0, 2.0, 1.0]
    picks = coverage(pool(TWO_CLUSTERS, CLUSTER_RELEVANCE, topics, levels), Params(3, 0.3))
    assert positions(picks) == [0, 2, 3]  # algebra/1, algebra/3, geometry/2 in order of their best score
    assert "algebra/1" in picks[0].reason


def test_a_budget_that_fits_exactly_three_short_examples() -> None:
    # Five candidates: the two most relevant are long (40 tokens), three are short (10 tokens each).
    vectors = unit([1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1])
    candidates = pool(vectors, [0.9, 0.85, 0.7, 0.65, 0.6], costs=[40, 40, 10, 10, 10])
    for name, strategy in STRATEGIES.items():
        if name == "hybrid":
            continue
        picks = strategy.pick(candidates, Params(4, 0.3, max_tokens=30, rng=np.random.default_rng(1)))
        assert sorted(positions(picks)) == [2, 3, 4], name  # never a truncated long one
    # With room for one long example, the best set holds it and the shorts that still fit.
    assert positions(knn(candidates, Params(4, 0.0, max_tokens=60))) == [0, 2, 3]


def test_hybrid_fuses_lexical_and_dense_ranks() -> None:
    vectors = unit([1, 0, 0], [0.9, 0.1, 0], [0.8, 0.2, 0.1], [0.7, 0.3, 0.2])
    texts = [
        "Cats sleep a lot.",
        "Dogs bark at night.",
        "Parrots can talk.",
        "How much does a refund for card fees take?",
    ]
    candidates = pool(vectors, [0.9, 0.8, 0.7, 0.6], texts=texts, query="refund of card fees")
    picks = hybrid(candidates, Params(2, 0.0))
    assert positions(picks) == [0, 3]  # the lexical match climbs from dense rank 4 to second place
    assert "lexical rank 1" in picks[1].reason


def test_random_is_reproducible_with_a_seed() -> None:
    candidates = pool(TWO_CLUSTERS, CLUSTER_RELEVANCE)
    first = positions(random_pick(candidates, Params(3, 0.0, rng=np.random.default_rng(42))))
    again = positions(random_pick(candidates, Params(3, 0.0, rng=np.random.default_rng(42))))
    assert first == again and len(set(first)) == 3


def test_topic_preference_favours_the_neighbourhoods_topic() -> None:
    relevance = np.array([0.80, 0.79, 0.78, 0.77, 0.76])
    topics: list[str | None] = ["physics", "algebra", "algebra", "algebra", "geometry"]
    score, estimated = apply_preferences(
        relevance, topics, np.full(5, np.nan), topic_weight=0.2, difficulty_target=None,
        match_difficulty=False, difficulty_weight=0.1, neighbours=5,
    )  # fmt: skip
    assert estimated.topic == "algebra"
    assert int(np.argmax(score)) == 1  # the best algebra example now outranks the single physics one
    assert score[4] < score[3]


def test_difficulty_match_prefers_the_estimated_level() -> None:
    relevance = np.array([0.9, 0.85, 0.84, 0.83, 0.5])
    levels = np.array([4.0, 4.0, 1.0, 4.0, 1.0])
    score, estimated = apply_preferences(
        relevance, [None] * 5, levels, topic_weight=0.0, difficulty_target=None,
        match_difficulty=True, difficulty_weight=0.3, neighbours=4,
    )  # fmt: skip
    assert estimated.difficulty_target is not None and 3.0 < estimated.difficulty_target < 4.0
    assert score[3] > score[2]  # level 4 beats the slightly more relevant level 1
    given, _ = apply_preferences(
        relevance, [None] * 5, levels, topic_weight=0.0, difficulty_target=1,
        match_difficulty=False, difficulty_weight=0.3, neighbours=4,
    )  # fmt: skip
    assert given[2] > given[1]


def test_arrange_orders() -> None:
    picks = [Pick(0, 0.5, 0.5, 0, ""), Pick(1, 0.9, 0.9, 0, ""), Pick(2, 0.7, 0.7, 0, "")]
    assert [p.relevance for p in arrange(picks, "most_similar_last")] == [0.5, 0.7, 0.9]
    assert [p.relevance for p in arrange(picks, "most_similar_first")] == [0.9, 0.7, 0.5]
    levels = {0: 3.0, 1: float("nan"), 2: 1.0}
    assert [p.position for p in arrange(picks, "ascending_difficulty", levels)] == [2, 0, 1]
    with pytest.raises(ValueError):
        arrange(picks, "sideways")


def example(text: str, output: str, steps: list[str] | None = None) -> Example:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    return Example(id=text, input=text, output=output, steps=steps, status="approved", created_at=stamp,
                   updated_at=stamp, version=1)  # fmt: skip


def test_rendering_shapes() -> None:
    chosen = [example("2 + 2?", "4", ["Add."]), example("3 x 3?", "9")]
    messages = as_messages(chosen, include_steps=True)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "2 + 2?"), ("assistant", "Add.\nAnswer: 4"), ("user", "3 x 3?"), ("assistant", "9"),
    ]  # fmt: skip
    assert as_messages(chosen, include_steps=False)[1].content == "4"
    assert as_text(chosen, "Q: {input}\nS: {steps}\nA: {output}", include_steps=True) == (
        "Q: 2 + 2?\nS: Add.\nA: 4\n\nQ: 3 x 3?\nS: \nA: 9"
    )
