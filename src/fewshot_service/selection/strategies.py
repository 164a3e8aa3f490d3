"""The selection strategies: knn, mmr, dpp, coverage, hybrid and random, each greedy under a token budget."""

from __future__ import annotations

import math

import numpy as np

from .base import Budget, Candidates, Params, Pick, pick_at, similarity_to
from .greedy import marginal_relevance


def _take_in_order(pool: Candidates, params: Params, order: np.ndarray) -> list[int]:
    """The first k positions of `order` that still fit the budget (a long one is skipped, never cut)."""
    budget = Budget(pool.costs, params.max_tokens)
    chosen: list[int] = []
    for position in order:
        if len(chosen) == params.k:
            break
        if budget.fits(len(pool))[position]:
            budget.take(int(position))
            chosen.append(int(position))
    return chosen


def knn(pool: Candidates, params: Params) -> list[Pick]:
    """The k best-scoring candidates that fit the budget; diversity is ignored."""
    chosen = _take_in_order(pool, params, np.argsort(-pool.score, kind="stable"))
    return [pick_at(pool, chosen, n, "among the most relevant") for n in range(len(chosen))]


def mmr(pool: Candidates, params: Params) -> list[Pick]:
    """Maximal marginal relevance: each pick maximises (1-d)·score − d·(similarity to the picks so far)."""
    return marginal_relevance(pool, params, lambda _: "relevant and unlike the picks before it")


def dpp(pool: Candidates, params: Params) -> list[Pick]:
    """Greedy MAP of a k-DPP whose kernel is quality × similarity × quality (Chen et al., 2018).

    Quality is exp(α·score) with α falling as diversity rises; each step adds the candidate that most
    increases the log-determinant, computed by an incremental Cholesky factorisation.
    """
    if params.diversity <= 0 or len(pool) == 0:
        return knn(pool, params)
    alpha = 2.0 * (1.0 - params.diversity) / params.diversity
    quality = np.exp(alpha * (pool.score - pool.score.max()))  # shifted: same ratios, no overflow
    count = len(pool)
    # The kernel's diagonal: the conditional variance of each candidate before any pick.
    gains = (quality**2 * np.einsum("ij,ij->i", pool.vectors, pool.vectors)).astype(np.float64)
    factors = np.zeros((params.k, count))
    available = np.ones(count, dtype=bool)
    budget = Budget(pool.costs, params.max_tokens)
    chosen: list[int] = []
    while len(chosen) < params.k:
        usable = available & budget.fits(count)
        if not usable.any():
            break
        best = int(np.argmax(np.where(usable, gains, -np.inf)))
        if gains[best] <= 1e-10:
            break  # the rest is (numerically) spanned by the picks
        step = len(chosen)
        kernel_row = quality[best] * similarity_to(pool.vectors, best) * quality
        row = (kernel_row - factors[:step, best] @ factors[:step]) / math.sqrt(gains[best])
        factors[step] = row
        gains -= row**2
        chosen.append(best)
        available[best] = False
        budget.take(best)
    reasons = {p: "adds the most new information (DPP)" for p in chosen}
    # Near-duplicates add no volume; rather than return fewer than k, fill by score.
    for position in np.argsort(-pool.score, kind="stable"):
        if len(chosen) == params.k:
            break
        if available[position] and budget.fits(count)[position]:
            chosen.append(int(position))
            available[position] = False
            budget.take(int(position))
            reasons[int(position)] = "next by relevance (nothing more diverse left)"
    return [pick_at(pool, chosen, n, reasons[chosen[n]]) for n in range(len(chosen))]


def coverage(pool: Candidates, params: Params) -> list[Pick]:
    """Spread the picks over the groups present in the neighbourhood: (topic, difficulty) cells when the
    bank has topics, otherwise clusters of the neighbourhood's embeddings (as Auto-CoT does). Groups take
    turns, the best-scoring group first, each giving its best-scoring candidate."""
    groups = _groups(pool, params.k) if len(pool) else {}
    order = sorted(groups, key=lambda g: -max(pool.score[i] for i in groups[g]))
    queues = {g: sorted(groups[g], key=lambda i: -pool.score[i]) for g in order}
    budget = Budget(pool.costs, params.max_tokens)
    chosen: list[int] = []
    reasons: dict[int, str] = {}
    while len(chosen) < params.k and any(queues.values()):
        for group in order:
            if len(chosen) == params.k:
                break
            queue = queues[group]
            fits = budget.fits(len(pool))
            while queue and not fits[queue[0]]:
                queue.pop(0)
            if queue:
                position = queue.pop(0)
                chosen.append(position)
                budget.take(position)
                reasons[position] = f"best of group {group} in the prompt's neighbourhood"
    return [pick_at(pool, chosen, n, reasons[chosen[n]]) for n in range(len(chosen))]


def _groups(pool: Candidates, k: int) -> dict[str, list[int]]:
    if any(topic is not None for topic in pool.topics):
        keyed: dict[str, list[int]] = {}
        for position, (topic, level) in enumerate(zip(pool.topics, pool.difficulties, strict=True)):
            key = f"{topic or 'no topic'}/{'?' if np.isnan(level) else int(level)}"
            keyed.setdefault(key, []).append(position)
        return keyed
    from sklearn.cluster import KMeans

    clusters = min(k, len(pool))
    if clusters <= 1:
        return {"cluster 1": list(range(len(pool)))}
    labels = KMeans(n_clusters=clusters, n_init=3, random_state=0).fit_predict(pool.vectors)
    found: dict[str, list[int]] = {}
    for position, label in enumerate(labels):
        found.setdefault(f"cluster {int(label) + 1}", []).append(position)
    return found


def hybrid(pool: Candidates, params: Params, rrf_k: int = 60) -> list[Pick]:
    """Reciprocal rank fusion of the dense ranking and a BM25 ranking of the pool's texts; the dense ranking
    alone when BM25 has nothing to rank by (a prompt of stopwords, single characters or punctuation)."""
    if pool.texts is None or pool.query_text is None:
        raise ValueError("hybrid needs the prompt and the candidates' texts")
    dense_order = np.argsort(-pool.score, kind="stable")
    dense_rank = np.empty(len(pool), dtype=np.int64)
    dense_rank[dense_order] = np.arange(len(pool))
    lexical_rank, no_lexical = _bm25_ranks(pool.query_text, pool.texts)
    if lexical_rank is None:
        chosen = _take_in_order(pool, params, dense_order)
        return [
            pick_at(pool, chosen, n, f"dense rank {dense_rank[p] + 1} ({no_lexical})") for n, p in enumerate(chosen)
        ]
    fused = 1.0 / (rrf_k + dense_rank + 1) + 1.0 / (rrf_k + lexical_rank + 1)
    chosen = _take_in_order(pool, params, np.argsort(-fused, kind="stable"))
    return [
        pick_at(pool, chosen, n, f"dense rank {dense_rank[p] + 1}, lexical rank {lexical_rank[p] + 1}")
        for n, p in enumerate(chosen)
    ]


def _bm25_ranks(query: str, documents: list[str]) -> tuple[np.ndarray | None, str]:
    """Rank of each document under BM25 for the query (0 is best; ties keep the dense order), or None and
    why BM25 cannot rank: bm25s fails on an empty vocabulary or an empty query, so neither reaches it."""
    import bm25s

    terms = bm25s.tokenize(query, stopwords="en", show_progress=False, return_ids=False)[0]
    if not terms:  # the tokenizer drops stopwords, one-character words and punctuation
        return None, "the prompt has no terms BM25 can use: dense ranking only"
    tokens = bm25s.tokenize(documents, stopwords="en", show_progress=False)
    if not tokens.vocab:
        return None, "the candidates have no terms BM25 can use: dense ranking only"
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    scores = np.asarray(retriever.get_scores(terms))
    ranks = np.empty(len(documents), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(documents))
    return ranks, ""


def random_pick(pool: Candidates, params: Params) -> list[Pick]:
    """A uniform random choice among the filtered examples: the baseline every strategy must beat."""
    chosen = _take_in_order(pool, params, params.rng.permutation(len(pool)))
    return [pick_at(pool, chosen, n, "drawn at random") for n in range(len(chosen))]
