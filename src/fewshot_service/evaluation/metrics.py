"""Selection-quality metrics: pure functions over one query's picks, and their aggregation over queries.

A query carries what the data set labels (topic, label, difficulty, any of them possibly unknown); each
pick carries the same fields, its embedding and its cosine similarity to the query. Picks are given in
rank order, most relevant first (the runner sorts them so, whatever order the selector returned).

Definitions (k is the number of picks actually returned, which is the requested k unless the bank ran out):

- topic precision: share of the picks whose topic equals the query's topic; on a data set without topics,
  whose label equals the query's label (ARC: Easy/Challenge). Undefined without picks or without a key.
- label hit: 1 when any pick has the query's label, else 0 (0 for an empty list).
- majority-vote accuracy: 1 when the most common label among the picks is the query's label. Ties are
  broken by rank: among the tied labels, the one held by the highest-ranked (most relevant) pick wins.
  Picks without a label do not vote; no vote at all counts as wrong (0).
- difficulty gap: mean |pick difficulty − query difficulty| over the picks with a known difficulty.
- intra-list similarity: mean pairwise cosine among the picks' embeddings (lower is more diverse);
  undefined for fewer than two picks.
- relevance: mean cosine similarity between the query and its picks.

Undefined values are None for one query and are left out of the mean over queries.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Labels:
    """What a data set says about one text: any of these may be unknown."""

    topic: str | None = None
    label: str | None = None
    difficulty: int | None = None


def _key(labels: Labels, use_topic: bool) -> str | None:
    return labels.topic if use_topic else labels.label


def topic_precision(query: Labels, picks: Sequence[Labels]) -> float | None:
    """Share of picks on the query's topic (on its label when the query has no topic)."""
    use_topic = query.topic is not None
    wanted = _key(query, use_topic)
    if wanted is None or not picks:
        return None
    return sum(_key(pick, use_topic) == wanted for pick in picks) / len(picks)


def label_hit(query: Labels, picks: Sequence[Labels]) -> float | None:
    """1.0 when any pick has the query's label, else 0.0."""
    if query.label is None:
        return None
    return float(any(pick.label == query.label for pick in picks))


def majority_label(picks: Sequence[Labels]) -> str | None:
    """The most common label among the picks (rank order); a tie goes to the label ranked first."""
    labels = [pick.label for pick in picks if pick.label is not None]
    if not labels:
        return None
    counts = Counter(labels)
    top = max(counts.values())
    return next(label for label in labels if counts[label] == top)


def majority_correct(query: Labels, picks: Sequence[Labels]) -> float | None:
    if query.label is None:
        return None
    return float(majority_label(picks) == query.label)


def difficulty_gap(query: Labels, picks: Sequence[Labels]) -> float | None:
    """Mean absolute difficulty difference between the query and the picks whose difficulty is known."""
    if query.difficulty is None:
        return None
    gaps = [abs(pick.difficulty - query.difficulty) for pick in picks if pick.difficulty is not None]
    return sum(gaps) / len(gaps) if gaps else None


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def intra_list_similarity(vectors: np.ndarray) -> float | None:
    """Mean cosine similarity over all pairs of picks (rows of vectors)."""
    if len(vectors) < 2:
        return None
    unit = _unit(vectors)
    pairs = (unit @ unit.T)[np.triu_indices(len(unit), 1)]
    return float(pairs.mean())


def mean_relevance(query_vector: np.ndarray, vectors: np.ndarray) -> float | None:
    """Mean cosine similarity between the query and each pick."""
    if len(vectors) == 0:
        return None
    return float((_unit(vectors) @ _unit(query_vector)).mean())


@dataclass(frozen=True)
class QueryScores:
    """Every metric for one query (None where undefined) and the selector's time for it."""

    picks: int
    topic_precision: float | None
    label_hit: float | None
    majority_correct: float | None
    difficulty_gap: float | None
    intra_list_similarity: float | None
    relevance: float | None
    latency_ms: float


def score_query(
    query: Labels,
    picks: Sequence[Labels],
    query_vector: np.ndarray,
    pick_vectors: np.ndarray,
    latency_ms: float,
) -> QueryScores:
    """All metrics of one query; picks and pick_vectors in rank order, most relevant first."""
    if len(picks) != len(pick_vectors):
        raise ValueError(f"{len(picks)} picks but {len(pick_vectors)} vectors")
    return QueryScores(
        picks=len(picks),
        topic_precision=topic_precision(query, picks),
        label_hit=label_hit(query, picks),
        majority_correct=majority_correct(query, picks),
        difficulty_gap=difficulty_gap(query, picks),
        intra_list_similarity=intra_list_similarity(pick_vectors),
        relevance=mean_relevance(query_vector, pick_vectors),
        latency_ms=latency_ms,
    )


METRICS = (
    "topic_precision",
    "label_hit",
    "majority_accuracy",
    "difficulty_gap",
    "intra_list_similarity",
    "relevance",
)


@dataclass(frozen=True)
class Summary:
    """Means over the queries where a metric is defined (None when it is defined for none), p50 latency."""

    queries: int
    short_lists: int  # queries that got fewer picks than the most any query got
    topic_precision: float | None
    label_hit: float | None
    majority_accuracy: float | None
    difficulty_gap: float | None
    intra_list_similarity: float | None
    relevance: float | None
    latency_p50_ms: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return sum(known) / len(known) if known else None


def aggregate(scores: Sequence[QueryScores]) -> Summary:
    most = max((s.picks for s in scores), default=0)
    return Summary(
        queries=len(scores),
        short_lists=sum(s.picks < most for s in scores),
        topic_precision=_mean([s.topic_precision for s in scores]),
        label_hit=_mean([s.label_hit for s in scores]),
        majority_accuracy=_mean([s.majority_correct for s in scores]),
        difficulty_gap=_mean([s.difficulty_gap for s in scores]),
        intra_list_similarity=_mean([s.intra_list_similarity for s in scores]),
        relevance=_mean([s.relevance for s in scores]),
        latency_p50_ms=float(np.percentile([s.latency_ms for s in scores], 50)) if scores else None,
    )
