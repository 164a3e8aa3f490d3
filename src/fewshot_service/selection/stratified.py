"""The stratified strategy (the service's default): MMR inside the group mix of the prompt's neighbourhood.

Plain MMR buys diversity by drifting off the prompt's topic; a topic preference buys focus by dropping the
other topics the nearest neighbours show, which loses the right one whenever the neighbourhood's vote is
wrong. Stratified keeps both:

1. every group among the k nearest candidates keeps one seat, so the set never loses a topic that plain
   similarity search would have shown;
2. the seats left go to the group the wider neighbourhood votes for, a softmax of relevance over the 20
   nearest (it trusts the very nearest far more than the 20th, where a linear vote let distant neighbours
   outvote close ones on BANKING77);
3. MMR fills the seats, so examples of one group are unlike each other, from a pool twice as deep as mmr's
   (there are fewer candidates per group than in the whole pool).

A group is the topic; in a bank without topics, the difficulty level (unless the request itself steers
difficulty, which the preferences then do); with neither, stratified is plain MMR over the deeper pool.
The constants were chosen on the full query sets of MMLU, BANKING77 and ARC (benchmarks/quality.py; the
figures are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from .base import Budget, Candidates, Params, Pick, similarity_to
from .preferences import estimate_topic_shares
from .strategies import _pick

VOTE_NEIGHBOURS = 20
VOTE_TEMPERATURE = 0.05  # cosine units: a neighbour 0.05 less similar than the nearest counts e⁻¹ as much
POOL_SCALE = 2


def stratified(pool: Candidates, params: Params) -> list[Pick]:
    """MMR over the seats of the neighbourhood's groups: each group of the k nearest keeps one, the vote's
    leader takes the rest."""
    keys = group_keys(pool, params.difficulty_steered)
    shares = estimate_topic_shares(pool.relevance, list(keys), VOTE_NEIGHBOURS, temperature=VOTE_TEMPERATURE)
    seats = seat_plan(pool.relevance, keys, shares, params.k)
    redundancy = np.zeros(len(pool), dtype=np.float32)
    available = np.ones(len(pool), dtype=bool)
    budget = Budget(pool.costs, params.max_tokens)
    chosen: list[int] = []
    reasons: dict[int, str] = {}
    while len(chosen) < params.k:
        usable = available & budget.fits(len(pool))
        seated = usable & np.array([key is not None and seats.get(key, 0) > 0 for key in keys], dtype=bool)
        if seated.any():
            usable = seated  # else every seat is filled or its group has nothing left that fits: any group
        if not usable.any():
            break
        marginal = np.where(usable, (1 - params.diversity) * pool.score - params.diversity * redundancy, -np.inf)
        best = int(np.argmax(marginal))
        key = keys[best]
        if key is not None and seats.get(key, 0) > 0:
            seats[key] -= 1
        chosen.append(best)
        available[best] = False
        budget.take(best)
        redundancy = np.maximum(redundancy, similarity_to(pool.vectors, best))
        reasons[best] = _reason(key, shares)
    return [_pick(pool, chosen, n, reasons[chosen[n]]) for n in range(len(chosen))]


def group_keys(pool: Candidates, difficulty_steered: bool) -> list[str | None]:
    """Each candidate's group: its topic when the pool has topics, else its difficulty level (unless the
    request steers difficulty), else None for all (one group)."""
    if any(topic is not None for topic in pool.topics):
        return [topic if topic is not None else "(no topic)" for topic in pool.topics]
    if not difficulty_steered and not np.isnan(pool.difficulties).all():
        return [None if np.isnan(level) else f"difficulty {int(level)}" for level in pool.difficulties]
    return [None] * len(pool)


def seat_plan(relevance: np.ndarray, keys: list[str | None], shares: dict[str, float], k: int) -> dict[str, int]:
    """Seats per group: one for each group among the k nearest, the rest to the vote's leader."""
    seats: dict[str, int] = {}
    for position in np.argsort(-relevance, kind="stable")[:k]:
        key = keys[position]
        if key is not None:
            seats[key] = 1
    if shares:
        leader = max(shares, key=lambda key: shares[key])
        seats[leader] = seats.get(leader, 0) + max(k - sum(seats.values()), 0)
    return seats


def _reason(key: str | None, shares: dict[str, float]) -> str:
    if key is None:
        return "relevant and unlike the picks before it"
    return (
        f"relevant and unlike the picks before it, from {key} ({shares.get(key, 0.0):.0%} of the neighbourhood's vote)"
    )
