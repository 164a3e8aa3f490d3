"""The pure selection core on hand-made pools whose right answer is known."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from fewshot_service.models import Example
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
    stratified,
)
from fewshot_service.selection.preferences import estimate_topic_shares
from fewshot_service.selection.stratified import seat_plan
from fewshot_service.serving.rendering import as_messages, as_text


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


@pytest.mark.parametrize("strategy", [mmr, dpp, stratified])
def test_diversifying_strategies_never_pick_both_of_a_duplicate_pair(strategy: object) -> None:
    picks = strategy(DUPLICATES, Params(2, 0.3))  # type: ignore[operator]
    assert positions(picks) == [0, 2]
    assert picks[0].redundancy == 0.0 and picks[1].redundancy == pytest.approx(0.6, abs=1e-3)


def test_dpp_still_returns_k_when_only_duplicates_are_left() -> None:
    assert sorted(positions(dpp(DUPLICATES, Params(4, 0.5)))) == [0, 1, 2, 3]


def test_zero_diversity_is_knn() -> None:
    for strategy in (mmr, dpp, stratified):
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


def test_the_topic_vote_trusts_the_nearest_neighbours_most() -> None:
    relevance = np.array([0.90, 0.80, 0.79, 0.78])
    topics: list[str | None] = ["cards", "fees", "fees", "fees"]
    shares = estimate_topic_shares(relevance, topics, 4)
    fees = np.exp(-2.0) + np.exp(-2.2) + np.exp(-2.4)  # e^((r - 0.90) / 0.05) each; the nearest weighs 1
    assert shares["cards"] == pytest.approx(1 / (1 + fees)) and shares["cards"] > 0.7  # three farther ones lose
    assert estimate_topic_shares(relevance, topics, 1) == {"cards": 1.0}  # only the nearest votes
    assert estimate_topic_shares(relevance, [None] * 4, 4) == {}  # no topics, no estimate


# Two topics: algebra holds the nearest candidate and most of the neighbourhood, geometry the second nearest
# and a far, unusual one (5). Candidates 0 and 2 are a duplicate pair inside algebra.
STRATA = unit(
    [1, 0, 0, 0, 0], [0.7, 0.7, 0, 0, 0], [1, 0.001, 0, 0, 0], [0.8, 0, 0.6, 0, 0], [0.8, 0, 0, 0.6, 0],
    [0.3, 0.2, 0, 0, 0.93], [0.9, 0, 0.3, 0.3, 0],
)  # fmt: skip
STRATA_TOPICS: list[str | None] = ["algebra", "geometry", "algebra", "algebra", "algebra", "geometry", "algebra"]
STRATA_RELEVANCE = [0.90, 0.89, 0.89, 0.88, 0.87, 0.80, 0.86]


def test_stratified_keeps_each_topic_of_the_k_nearest_and_gives_the_rest_to_the_vote() -> None:
    candidates = pool(STRATA, STRATA_RELEVANCE, STRATA_TOPICS)
    picks = stratified(candidates, Params(4, 0.6))
    # knn's topics (algebra, geometry, algebra, algebra) are all kept; the seat left goes to algebra, the
    # neighbourhood's vote, where mmr spends it on a second geometry example because it is unusual.
    assert sorted(STRATA_TOPICS[p] for p in positions(picks)) == ["algebra", "algebra", "algebra", "geometry"]
    assert [STRATA_TOPICS[p] for p in positions(mmr(candidates, Params(4, 0.6)))].count("geometry") == 2
    assert not {0, 2} <= set(positions(picks))  # within algebra, never both of the duplicate pair
    assert "from algebra" in picks[0].reason and "of the neighbourhood's vote" in picks[0].reason


def test_seat_plan_hedges_a_split_vote_and_gives_the_rest_to_the_leader() -> None:
    relevance = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    keys: list[str | None] = ["a", "a", "b", "c", "d"]
    # k=2: the two nearest are both "a"; "c" has at least half of a's vote, "b" and "d" less.
    assert seat_plan(relevance, keys, {"a": 0.5, "b": 0.2, "c": 0.25, "d": 0.05}, 2) == {"a": 1, "c": 1}
    assert seat_plan(relevance, keys, {"a": 0.8, "b": 0.1, "c": 0.1}, 3) == {"a": 2, "b": 1}  # b: 3 nearest


def test_seat_plan_counts_ties_with_the_kth_nearest_as_near() -> None:
    # Identical inputs filed under two topics tie; which one plain search returns is an accident of order.
    relevance = np.array([0.9, 0.7, 0.7, 0.5])
    keys: list[str | None] = ["a", "b", "c", "d"]
    assert seat_plan(relevance, keys, {"a": 0.9, "b": 0.04, "c": 0.06}, 2) == {"a": 1, "c": 1}
    assert seat_plan(relevance, keys, {"a": 0.9, "b": 0.06, "c": 0.04}, 2) == {"a": 1, "b": 1}
    assert seat_plan(relevance, keys, {"a": 0.9}, 3) == {"a": 1, "b": 1, "c": 1}


def test_stratified_never_loses_a_topic_of_the_k_nearest() -> None:
    # The label-hit guarantee behind the default: whatever the pool, every topic among the k most relevant
    # candidates is among the picks, so the set holds the prompt's topic whenever similarity search's does.
    rng = np.random.default_rng(7)
    for _ in range(200):
        count, k = int(rng.integers(6, 40)), int(rng.integers(1, 6))
        vectors = rng.normal(size=(count, 8))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        relevance = np.sort(rng.uniform(0.2, 0.9, count))[::-1].tolist()
        topics: list[str | None] = [str(t) for t in rng.integers(0, 4, count)]
        candidates = pool(vectors.astype(np.float32), relevance, topics)
        picks = stratified(candidates, Params(k, float(rng.uniform(0, 1))))
        assert len(picks) == k
        assert {topics[i] for i in range(k)} <= {topics[p.position] for p in picks}


def test_stratified_uses_difficulty_levels_in_a_bank_without_topics_unless_the_request_steers_them() -> None:
    vectors = unit([1, 0, 0], [1, 0.02, 0], [0.99, 0, 0.05], [0, 1, 0], [0, 0, 1])
    relevance = [0.9, 0.89, 0.88, 0.6, 0.55]
    levels = [4.0, 4.0, 4.0, 2.0, 2.0]
    candidates = pool(vectors, relevance, difficulties=levels)
    # The nearest are all level 4 and so is the vote: full diversity still stays at level 4.
    assert {levels[p.position] for p in stratified(candidates, Params(3, 1.0))} == {4.0}
    # When the request steers difficulty itself, levels form no groups and diversity is free to leave them.
    steered = stratified(candidates, Params(3, 1.0, difficulty_steered=True))
    assert 2.0 in {levels[p.position] for p in steered}


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


def test_every_strategy_returns_nothing_from_an_empty_pool() -> None:
    empty = pool(np.zeros((0, 3), dtype=np.float32), [], texts=[], query="anything")
    for name, strategy in STRATEGIES.items():
        assert strategy.pick(empty, Params(4, 0.5)) == [], name


def test_hybrid_falls_back_to_the_dense_order_when_every_text_is_stopwords() -> None:
    vectors = unit([1, 0, 0], [0.9, 0.1, 0], [0.8, 0.2, 0.1])
    candidates = pool(vectors, [0.9, 0.8, 0.7], texts=["the", "a", "of the"], query="what is it")
    assert positions(hybrid(candidates, Params(2, 0.0))) == [0, 1]
