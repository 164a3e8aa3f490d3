"""Topic and difficulty awareness: estimate both from the prompt's nearest neighbours, then score each
candidate by its relevance minus penalties for being off the estimated topic or far from the target
difficulty. Pure functions; the strategies then choose by the adjusted score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOTE_TEMPERATURE = 0.05  # cosine units: a neighbour 0.05 less similar than the nearest counts e⁻¹ as much


@dataclass(frozen=True)
class Preferences:
    topic: str | None  # the prompt's estimated topic
    topic_shares: dict[str, float]  # each topic's share of the nearest neighbours' vote
    difficulty_target: float | None


def estimate_topic_shares(relevance: np.ndarray, topics: list[str | None], neighbours: int) -> dict[str, float]:
    """Vote of the nearest neighbours that have a topic (or any other group key), each weighing
    exp((relevance - best) / VOTE_TEMPERATURE): a softmax that trusts the very nearest far more than the
    last (weighing by relevance itself let distant neighbours outvote close ones on BANKING77)."""
    nearest = np.argsort(-relevance, kind="stable")[:neighbours]
    if len(nearest) == 0:
        return {}
    near = relevance[nearest].astype(np.float64)
    weights = np.exp((near - near.max()) / VOTE_TEMPERATURE)
    votes: dict[str, float] = {}
    for position, weight in zip(nearest, weights, strict=True):
        topic = topics[position]
        if topic is not None:
            votes[topic] = votes.get(topic, 0.0) + float(weight)
    total = sum(votes.values())
    return {topic: weight / total for topic, weight in votes.items()} if total > 0 else {}


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
) -> tuple[np.ndarray, Preferences]:
    """(adjusted scores, what was estimated)."""
    score = relevance.astype(np.float64).copy()
    shares = estimate_topic_shares(relevance, topics, neighbours) if topic_weight > 0 else {}
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
