"""The stratified strategy (the service's default): MMR inside the group mix of the prompt's neighbourhood.

Plain MMR buys diversity by drifting off the prompt's topic; a topic preference buys focus by dropping the
other topics the nearest neighbours show, which loses the right one whenever the neighbourhood's vote is
wrong. Stratified keeps both:

1. every group among the k nearest candidates keeps one seat, so the set never loses a topic that plain
   similarity search would have shown;
2. the wider neighbourhood votes (the 20 nearest, the same softmax vote that estimates the prompt's topic,
   preferences.neighbour_vote): a group with at least half the leader's vote gets a seat too, and
   the leader takes the seats left;
3. MMR fills the seats, so examples of one group are unlike each other, from a pool twice as deep as mmr's
   (there are fewer candidates per group than in the whole pool).

A group is the topic; in a bank without topics, the difficulty level (unless the request itself steers
difficulty, which the preferences then do); with neither, stratified is plain MMR over the deeper pool.
The constants were chosen on the full query sets of MMLU, BANKING77 and ARC (benchmarks/quality.py; the
figures are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from .base import Candidates, Params, Pick
from .greedy import marginal_relevance
from .preferences import neighbour_vote

POOL_SCALE = 2
# A topic outside the k nearest gets a seat of its own when the vote gives it at least this share of the
# leader's: a split vote is hedged (label hit rose on all three data sets, topic precision stayed above knn's).
RUNNER_UP_SHARE = 0.5
TIE = 1e-6  # relevances this close are the same similarity (float32 inner products of identical inputs)
NO_TOPIC = "(no topic)"  # the group of candidates without a topic, in a pool where others have one


def stratified(pool: Candidates, params: Params) -> list[Pick]:
    """MMR over the seats of the neighbourhood's groups (seat_plan)."""
    keys, by_topic = group_keys(pool, params.difficulty_steered)
    if by_topic and pool.topic_vote is not None:
        shares = pool.topic_vote.shares(unknown=NO_TOPIC)  # the vote the preferences read, computed once
    else:
        shares = neighbour_vote(pool.relevance, keys, params.neighbours).shares()
    seats = seat_plan(pool.relevance, keys, shares, params.k)

    def seated(usable: np.ndarray) -> np.ndarray:
        open_seat = np.array([key is not None and seats.get(key, 0) > 0 for key in keys], dtype=bool)
        # Once every seat is filled, or a group has nothing left that fits, any group will do.
        return usable & open_seat if (usable & open_seat).any() else usable

    def take_seat(position: int) -> str:
        key = keys[position]
        if key is not None and seats.get(key, 0) > 0:
            seats[key] -= 1
        return _reason(key, shares)

    return marginal_relevance(pool, params, take_seat, narrow=seated)


def group_keys(pool: Candidates, difficulty_steered: bool) -> tuple[list[str | None], bool]:
    """Each candidate's group, and whether groups are topics: its topic when the pool has topics, else its
    difficulty level (unless the request steers difficulty), else None for all (one group)."""
    if any(topic is not None for topic in pool.topics):
        return [topic if topic is not None else NO_TOPIC for topic in pool.topics], True
    if not difficulty_steered and not np.isnan(pool.difficulties).all():
        return [None if np.isnan(level) else f"difficulty {int(level)}" for level in pool.difficulties], False
    return [None] * len(pool), False


def seat_plan(relevance: np.ndarray, keys: list[str | None], shares: dict[str, float], k: int) -> dict[str, int]:
    """Seats per group: one for each group among the k nearest and each runner-up of the vote, the rest to
    the vote's leader.

    Candidates tied with the k-th nearest count as among the k nearest (identical inputs filed under two
    topics are common: which of them similarity search returns is an accident of order); when that makes
    more groups than seats, the tied groups the vote favours are seated first."""
    order = np.argsort(-relevance, kind="stable")
    seats: dict[str, int] = {}
    if k > 0 and len(order):
        kth = float(relevance[order[min(k, len(order)) - 1]])
        sure = [keys[p] for p in order if relevance[p] > kth + TIE]
        tied = [keys[p] for p in order if abs(float(relevance[p]) - kth) <= TIE]
        for key in [*sure, *sorted(tied, key=lambda key: -shares.get(key, 0.0) if key else 0.0)]:
            if key is not None and key not in seats and len(seats) < k:
                seats[key] = 1
    if shares:
        leader = max(shares, key=lambda key: shares[key])
        for key in sorted(shares, key=lambda key: -shares[key]):
            if len(seats) < k and key not in seats and shares[key] >= RUNNER_UP_SHARE * shares[leader]:
                seats[key] = 1
        seats[leader] = seats.get(leader, 0) + max(k - sum(seats.values()), 0)
    return seats


def _reason(key: str | None, shares: dict[str, float]) -> str:
    if key is None:
        return "relevant and unlike the picks before it"
    return (
        f"relevant and unlike the picks before it, from {key} ({shares.get(key, 0.0):.0%} of the neighbourhood's vote)"
    )
