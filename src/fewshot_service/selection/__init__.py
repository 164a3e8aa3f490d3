"""Selection strategies: pure functions that choose k examples among filtered candidates."""

from .base import Budget, Candidates, Params, Pick, Strategy
from .ordering import arrange
from .preferences import NeighbourVote, Preferences, apply_preferences, neighbour_vote
from .strategies import coverage, dpp, hybrid, knn, mmr, random_pick
from .stratified import POOL_SCALE, stratified

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "stratified",
            stratified,
            True,
            "mmr inside the neighbourhood's topic mix: each topic of the k nearest keeps a seat, the topics the "
            "20 nearest vote for take the rest",
            uses_diversity=True,
            pool_scale=POOL_SCALE,
        ),
        Strategy("knn", knn, False, "the k most similar examples"),
        Strategy(
            "mmr",
            mmr,
            True,
            "maximal marginal relevance: similar to the prompt, not to each other",
            uses_diversity=True,
        ),
        Strategy(
            "dpp",
            dpp,
            True,
            "a determinantal point process: relevant examples spanning the most volume",
            uses_diversity=True,
        ),
        Strategy("coverage", coverage, True, "one example per topic/difficulty group (or cluster) nearby"),
        Strategy("hybrid", hybrid, True, "BM25 and dense ranks fused (reciprocal rank fusion)", needs_texts=True),
        Strategy("random", random_pick, True, "random filtered examples, a baseline", sampled_pool=True),
    )
}

__all__ = [
    "STRATEGIES", "Budget", "Candidates", "NeighbourVote", "Params", "Pick", "Preferences", "Strategy",
    "apply_preferences", "arrange", "coverage", "dpp", "hybrid", "knn", "mmr", "neighbour_vote", "random_pick",
    "stratified",
]  # fmt: skip
