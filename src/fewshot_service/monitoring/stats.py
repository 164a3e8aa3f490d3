"""The shape of the bank at a glance: counts, coverage gaps, near-duplicate clusters, label throughput, balance.

Counting happens in SQL (GROUP BY, bank/stats_sql.py); what is computed here is small: gaps against a
target, entropies, and the clusters, which compare stored embeddings (no model is loaded).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..bank import SqlBank
from ..bank.stats_sql import CellCount
from ..feedback.types import UtilityStats
from ..settings import Settings
from .agreement import AgreementReport, agreement_report

DIFFICULTIES = (1, 2, 3, 4, 5)
MAX_CLUSTERS = 100  # listed one by one; the counts cover all of them
EXCERPT_CHARS = 120
# Rows of the similarity matrix computed at once: bounds memory to about this many floats.
_BLOCK_FLOATS = 16_000_000


class Cell(BaseModel):
    topic: str | None
    difficulty: int | None
    source: str
    status: str
    count: int


class Gap(BaseModel):
    topic: str
    difficulty: int
    approved: int
    missing: int = Field(description="Approved examples still needed to reach the coverage target.")


class ClusterMember(BaseModel):
    id: str
    status: str
    topic: str | None
    input: str = Field(description=f"The first {EXCERPT_CHARS} characters.")


class Cluster(BaseModel):
    size: int
    max_similarity: float
    members: list[ClusterMember]


class Clusters(BaseModel):
    threshold: float
    embedding_model: str | None
    count: int = Field(description="Clusters of two or more examples at least `threshold` similar (transitively).")
    examples: int = Field(description="Examples that belong to some cluster.")
    largest: list[Cluster] = Field(description=f"The {MAX_CLUSTERS} largest clusters at most.")


class DayThroughput(BaseModel):
    day: str = Field(description="UTC date, YYYY-MM-DD.")
    labels: int
    annotators: int
    examples: int


class Balance(BaseModel):
    examples: int
    topics: int
    topic_entropy: float | None = Field(description="Entropy of the topic distribution / log(topics); 1 is even.")
    difficulty_entropy: float | None = Field(description="Entropy over difficulties 1-5 / log(5); 1 is even.")


class StatsReport(BaseModel):
    bank_revision: int
    total: int
    by_status: dict[str, int]
    by_source: dict[str, int]
    by_topic: dict[str, int] = Field(description='Examples per topic ("" for none).')
    by_difficulty: dict[str, int] = Field(description='Examples per difficulty ("" for none).')
    cells: list[Cell] = Field(description="Counts by topic × difficulty × source × status (empty cells absent).")
    coverage_target: int
    gaps: list[Gap] = Field(description="Topic × difficulty cells with fewer approved examples than the target.")
    near_duplicates: Clusters
    labels_total: int
    label_throughput: list[DayThroughput]
    balance: dict[str, Balance] = Field(description='"approved" (what is served) and "all" live examples.')
    utility: UtilityStats | None = Field(None, description="What reported outcomes say of the examples (feedback).")


# -- pure parts ---------------------------------------------------------------------------------
def normalised_entropy(counts: Iterable[int], categories: int) -> float | None:
    """Shannon entropy of the counts divided by log(categories): 1 for an even spread, 0 for one category.

    Undefined (None) with fewer than two possible categories or nothing counted.
    """
    from scipy.stats import entropy

    values = [c for c in counts if c > 0]
    if categories < 2 or not values:
        return None
    return round(float(entropy(values)) / math.log(categories), 4)


def coverage_gaps(cells: Sequence[CellCount], target: int) -> list[Gap]:
    """Every topic in the bank × difficulty 1-5 whose approved count is under target, emptiest first."""
    topics = sorted({c.topic for c in cells if c.topic is not None})
    approved: Counter[tuple[str, int]] = Counter()
    for c in cells:
        if c.status == "approved" and c.topic is not None and c.difficulty is not None:
            approved[(c.topic, c.difficulty)] += c.n
    gaps = [
        Gap(topic=t, difficulty=d, approved=approved[(t, d)], missing=target - approved[(t, d)])
        for t in topics
        for d in DIFFICULTIES
        if approved[(t, d)] < target
    ]
    return sorted(gaps, key=lambda g: (-g.missing, g.topic, g.difficulty))


def balance(cells: Sequence[CellCount], statuses: set[str] | None) -> Balance:
    """Normalised entropies of the topic and difficulty distributions of the examples with these statuses.

    The topic entropy is over every topic the bank holds (so a topic whose examples are all rejected
    lowers the approved balance), the difficulty entropy over 1-5 (a missing level lowers it).
    """
    topics_in_bank = {c.topic for c in cells if c.topic is not None}
    chosen = [c for c in cells if statuses is None or c.status in statuses]
    by_topic: Counter[str] = Counter()
    by_difficulty: Counter[int] = Counter()
    for c in chosen:
        if c.topic is not None:
            by_topic[c.topic] += c.n
        if c.difficulty is not None:
            by_difficulty[c.difficulty] += c.n
    return Balance(
        examples=sum(c.n for c in chosen),
        topics=len(topics_in_bank),
        topic_entropy=normalised_entropy(by_topic.values(), len(topics_in_bank)),
        difficulty_entropy=normalised_entropy(by_difficulty.values(), len(DIFFICULTIES)),
    )


def similar_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity) for every pair i < j with cosine similarity >= threshold, computed in blocks."""
    count = len(vectors)
    if count < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    block = max(1, min(count, _BLOCK_FLOATS // count))
    rows, cols, sims = [], [], []
    for start in range(0, count, block):
        scores = unit[start : start + block] @ unit.T
        i, j = np.nonzero(scores >= threshold)
        keep = j > i + start  # each pair once, never an example with itself
        rows.append(i[keep] + start)
        cols.append(j[keep])
        sims.append(scores[i[keep], j[keep]])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)


def clusters_of(count: int, pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[tuple[list[int], float]]:
    """Connected components (two or more members) of the similarity graph, largest first, with the highest
    similarity inside each."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols, sims = pairs
    if len(rows) == 0:
        return []
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for node in np.unique(np.concatenate([rows, cols])):
        members.setdefault(int(component[node]), []).append(int(node))
    best: dict[int, float] = {}
    for i, sim in zip(rows, sims, strict=True):
        key = int(component[i])
        best[key] = max(best.get(key, 0.0), float(sim))
    found = [(sorted(nodes), best[key]) for key, nodes in members.items()]
    return sorted(found, key=lambda c: (-len(c[0]), -c[1], c[0][0]))


# -- the report ---------------------------------------------------------------------------------
def near_duplicates(bank: SqlBank, threshold: float) -> Clusters:
    model_id = bank.embedding_model_in_use()
    rows = list(bank.iter_embedded(model_id)) if model_id else []
    if not rows:
        return Clusters(threshold=threshold, embedding_model=model_id, count=0, examples=0, largest=[])
    vectors = np.stack([r.embedding for r in rows])
    found = clusters_of(len(rows), similar_pairs(vectors, threshold))
    listed = [
        Cluster(
            size=len(nodes),
            max_similarity=round(best, 4),
            members=[
                ClusterMember(
                    id=rows[n].id, status=rows[n].status, topic=rows[n].topic, input=rows[n].input[:EXCERPT_CHARS]
                )
                for n in nodes
            ],
        )
        for nodes, best in found[:MAX_CLUSTERS]
    ]
    return Clusters(
        threshold=threshold,
        embedding_model=model_id,
        count=len(found),
        examples=sum(len(nodes) for nodes, _ in found),
        largest=listed,
    )


def _totals(cells: Sequence[CellCount], key: str) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for c in cells:
        value = getattr(c, key)
        totals["" if value is None else str(value)] += c.n
    return dict(sorted(totals.items()))


def bank_stats(bank: SqlBank, settings: Settings) -> StatsReport:
    revision = bank.revision()
    cells = bank.cell_counts()
    days = bank.label_days()
    return StatsReport(
        bank_revision=revision,
        total=sum(c.n for c in cells),
        by_status=_totals(cells, "status"),
        by_source=_totals(cells, "source"),
        by_topic=_totals(cells, "topic"),
        by_difficulty=_totals(cells, "difficulty"),
        cells=[
            Cell(topic=c.topic, difficulty=c.difficulty, source=c.source, status=c.status, count=c.n) for c in cells
        ],
        coverage_target=settings.coverage_target,
        gaps=coverage_gaps(cells, settings.coverage_target),
        near_duplicates=near_duplicates(bank, settings.near_duplicate_threshold),
        labels_total=sum(d.labels for d in days),
        label_throughput=[DayThroughput(**d._asdict()) for d in days],
        balance={"approved": balance(cells, {"approved"}), "all": balance(cells, None)},
    )


def label_agreement(bank: SqlBank, settings: Settings) -> AgreementReport:
    """The agreement report over the bank's labels (those on deleted examples count only for timing)."""
    return agreement_report(
        bank.all_labels(),
        gold=bank.gold_metadata(),
        preference_labels=[label for _, label in bank.iter_preference_labels()],
        fast_label_seconds=settings.fast_label_seconds,
        timing_labels=bank.all_labels(live_only=False),
    )
