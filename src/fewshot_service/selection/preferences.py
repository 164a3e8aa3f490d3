"""Topic and difficulty awareness: estimate both from the prompt's nearest neighbours, then score each
candidate by its relevance minus penalties for being off the estimated topic or far from the target
difficulty. Pure functions; the strategies then choose by the adjusted score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VOTE_TEMPERATURE = 0.05  # cosine units: a neighbour 0.05 less similar than the nearest counts e⁻¹ as much


@dataclass(frozen=True)
class NeighbourVote:
    """The nearest neighbours' vote: each topic's (or group's) summed weight, None for neighbours without one,
    in the order the neighbours first voted for it."""

    weights: dict[str | None, float]

    def shares(self, unknown: str | None = None) -> dict[str, float]:
        """Each topic's share of the vote; neighbours without a topic vote for `unknown` when it is given (a
        group of their own), else are left out."""
        votes: dict[str, float] = {}
        for topic, weight in self.weights.items():
            key = unknown if topic is None else topic
            if key is not None:
                votes[key] = votes.get(key, 0.0) + weight
        total = sum(votes.values())
        return {topic: weight / total for topic, weight in votes.items()} if total > 0 else {}


@dataclass(frozen=True)
class Preferences:
    topic: str | None  # the prompt's estimated topic
    topic_shares: dict[str, float]  # each topic's share of the nearest neighbours' vote
    difficulty_target: float | None


def neighbour_vote(relevance: np.ndarray, topics: Sequence[str | None], neighbours: int) -> NeighbourVote:
    """Vote of the nearest neighbours, each weighing exp((relevance - best) / VOTE_TEMPERATURE): a softmax that
    trusts the very nearest far more than the last (weighing by relevance itself let distant neighbours
    outvote close ones on BANKING77). Computed once per selection: preferences and stratified both read it."""
    nearest = np.argsort(-relevance, kind="stable")[:neighbours]
    weights: dict[str | None, float] = {}
    if len(nearest) == 0:
        return NeighbourVote(weights)
    near = relevance[nearest].astype(np.float64)
    for position, weight in zip(nearest, np.exp((near - near.max()) / VOTE_TEMPERATURE), strict=True):
        topic = topics[position]
        weights[topic] = weights.get(topic, 0.0) + float(weight)
    return NeighbourVote(weights)


def estimate_topic_shares(relevance: np.ndarray, topics: Sequence[str | None], neighbours: int) -> dict[str, float]:
    """Each topic's (or any other group key's) share of the nearest neighbours' vote that have one."""
    return neighbour_vote(relevance, topics, neighbours).shares()


def estimate_difficulty(relevance: np.ndarray, difficulties: np.ndarray, neighbours: int) -> float | None:
    """Relevance-weighted mean difficulty of the nearest neighbours whose difficulty is known."""
    known = [p for p in np.argsort(-relevance, kind="stable") if not np.isnan(difficulties[p])][:neighbours]
    if not known:
        return None
    weights = np.maximum(relevance[known], 1e-6)
    return float(np.average(difficulties[known], weights=weights))


def apply_preferences(
    relevance: np.ndarray,
    topics: list[str | None],
    difficulties: np.ndarray,
    *,
    topic_weight: float,
    difficulty_target: float | None,
    match_difficulty: bool,
    difficulty_weight: float,
    neighbours: int,
    vote: NeighbourVote | None = None,
) -> tuple[np.ndarray, Preferences]:
    """(adjusted scores, what was estimated); vote, the neighbours' topic vote, when already computed."""
    score = relevance.astype(np.float64).copy()
    shares: dict[str, float] = {}
    if topic_weight > 0:
        shares = (vote or neighbour_vote(relevance, topics, neighbours)).shares()
    if shares:
        # Off-topic costs up to topic_weight; an unknown topic is neither preferred nor penalised.
        penalty = [topic_weight * (1.0 - shares.get(t, 0.0)) if t is not None else 0.0 for t in topics]
        score -= np.asarray(penalty)
    if match_difficulty:
        difficulty_target = estimate_difficulty(relevance, difficulties, max(3, neighbours // 2))
    if difficulty_target is not None:
        # Difficulty runs 1..5: a gap of 4 costs the full weight; unknown difficulty costs half.
        gaps = np.where(np.isnan(difficulties), 2.0, np.abs(difficulties - difficulty_target))
        score -= difficulty_weight * gaps / 4.0
    topic = max(shares, key=lambda t: shares[t]) if shares else None
    return score, Preferences(topic, shares, difficulty_target)
