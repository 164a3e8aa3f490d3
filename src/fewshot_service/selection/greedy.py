"""The greedy loop mmr and stratified share: maximal marginal relevance, one pick at a time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import Budget, Candidates, Params, Pick, pick_at, similarity_to


def marginal_relevance(
    pool: Candidates,
    params: Params,
    reason: Callable[[int], str],
    narrow: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[Pick]:
    """Up to k picks, each maximising (1-d)·score − d·(similarity to the picks so far) among the candidates
    still available that fit the budget. narrow may restrict those further (it sees the usable mask and
    returns the one to choose from); reason(position) says why a pick was made, asked right after it."""
    redundancy = np.zeros(len(pool), dtype=np.float32)
    available = np.ones(len(pool), dtype=bool)
    budget = Budget(pool.costs, params.max_tokens)
    chosen: list[int] = []
    reasons: list[str] = []
    while len(chosen) < params.k:
        usable = available & budget.fits(len(pool))
        if narrow is not None:
            usable = narrow(usable)
        if not usable.any():
            break
        marginal = np.where(usable, (1 - params.diversity) * pool.score - params.diversity * redundancy, -np.inf)
        best = int(np.argmax(marginal))
        chosen.append(best)
        available[best] = False
        budget.take(best)
        redundancy = np.maximum(redundancy, similarity_to(pool.vectors, best))
        reasons.append(reason(best))
    return [pick_at(pool, chosen, n, reasons[n]) for n in range(len(chosen))]
