"""Markdown tables of evaluation results, the diversity frontier and the default-strategy verdict (issue 5).

The verdict checks a candidate default (a strategy at one diversity and topic preference) on every
labelled data set against LangChain's selectors: topic precision ≥ SemanticSimilarityExampleSelector's,
intra-list similarity ≤ MaxMarginalRelevanceExampleSelector's, label hit ≥ the similarity selector's and,
where difficulty is labelled, the difficulty gap of the candidate's ``difficulty="match"`` run ≤ the
similarity selector's. The other figures come from the candidate's plain run (no difficulty preference),
as a request that names nothing gets it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .baselines import LC_MMR, LC_SIMILARITY
from .metrics import Summary
from .runner import RunResult
from .suite import REFERENCE_STRATEGIES, DatasetRun

EPSILON = 1e-9
COLUMNS = (
    ("topic P@k", "topic_precision", 3),
    ("label hit@k", "label_hit", 3),
    ("majority acc", "majority_accuracy", 3),
    ("difficulty gap", "difficulty_gap", 3),
    ("intra-list sim ↓", "intra_list_similarity", 3),
    ("relevance", "relevance", 3),
    ("p50 ms", "latency_p50_ms", 2),
)


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _setting(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def table(results: Sequence[RunResult], *, pareto: bool = False) -> str:
    """One row per run; pareto marks the runs no other run beats on both topic precision (or relevance,
    without labels) and intra-list similarity."""
    done = [r for r in results if r.summary is not None]
    front = pareto_front(done) if pareto else set()
    head = ["selector", "diversity", "topic pref", *[title for title, _, _ in COLUMNS]]
    if any(r.near_copies for r in done):
        head.append("near copies")
    if pareto:
        head.append("frontier")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for result in results:
        cells = [result.name, _setting(result.diversity), _setting(result.topic_preference)]
        if result.summary is None:
            cells += [f"not run: {result.error}"] + [""] * (len(head) - 4)
        else:
            cells += [_cell(getattr(result.summary, attr), digits) for _, attr, digits in COLUMNS]
            if "near copies" in head:
                cells.append(str(result.near_copies))
            if pareto:
                cells.append("●" if id(result) in front else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _frontier_axes(summary: Summary) -> tuple[float, float] | None:
    quality = summary.topic_precision if summary.topic_precision is not None else summary.relevance
    if quality is None or summary.intra_list_similarity is None:
        return None
    return quality, summary.intra_list_similarity


def pareto_front(results: Sequence[RunResult]) -> set[int]:
    """ids of the results not dominated on (quality ↑, intra-list similarity ↓)."""
    points = {id(r): _frontier_axes(r.summary) for r in results if r.summary is not None}
    front = set()
    for key, point in points.items():
        if point is None:
            continue
        dominated = any(
            other is not None
            and other[0] >= point[0] - EPSILON
            and other[1] <= point[1] + EPSILON
            and (other[0] > point[0] + EPSILON or other[1] < point[1] - EPSILON)
            for other_key, other in points.items()
            if other_key != key
        )
        if not dominated:
            front.add(key)
    return front


def _sorted(results: Sequence[RunResult]) -> list[RunResult]:
    """By strategy, then topic preference, then diversity (the values used)."""
    return sorted(
        results,
        key=lambda r: (
            r.spec.strategy,
            -1.0 if r.topic_preference is None else r.topic_preference,
            -1.0 if r.diversity is None else r.diversity,
        ),
    )


def render_dataset(run: DatasetRun, *, frontier: bool = True, heading: str = "###") -> str:
    """A data set's section: what was run, the default settings table and the frontier tables."""
    dataset = run.dataset
    parts = [
        f"{heading} {dataset.name}",
        f"{dataset.description}. Bank: {run.bank_size} examples; {len(run.queries)} queries sampled "
        f"(seed fixed) from {len(dataset.queries)}; k={run.k}. "
        + (
            f"Sampled queries with a near copy (cosine ≥ the leakage threshold) in the bank: {run.near_copies}."
            if run.kept_near_copies
            else f"Queries with a near copy (cosine ≥ the leakage threshold) in the bank were skipped while "
            f"sampling: {run.near_copies}."
        ),
    ]
    if run.missing:
        parts.append(f"Strategies not available in this build (skipped): {', '.join(run.missing)}.")
    if run.baseline_problem and run.baseline_problem != "not requested":
        parts.append(f"LangChain rows absent: {run.baseline_problem}.")
    plan = run.plan
    main = [*plan.defaults, *[s for s in plan.matched if s.diversity is None and s.topic_preference is None]]
    parts.append("Every strategy at the service's defaults" + (" (and with difficulty=match)" if plan.matched else ""))
    parts.append(table(run.rows([*main, *plan.baselines])))
    if frontier and plan.frontier:
        parts.append(
            "Frontier: every plain run (diversity and topic preference varied); ● marks runs that no other run "
            + (
                "beats on both topic precision and intra-list similarity"
                if dataset.has_label
                else "beats on both relevance and intra-list similarity"
            )
        )
        parts.append(
            table([*_sorted(run.rows([*plan.defaults, *plan.frontier])), *run.rows(plan.baselines)], pareto=True)
        )
        extra = [s for s in plan.matched if s not in main]
        if extra:
            parts.append("Frontier with difficulty=match")
            parts.append(
                table(
                    [*_sorted(run.rows([*main[len(plan.defaults) :], *extra])), *run.rows(plan.baselines)], pareto=True
                )
            )
    return "\n\n".join(parts)


def results_of(run: DatasetRun) -> DatasetResults:
    dataset = run.dataset
    return DatasetResults(
        dataset.name, dataset.has_topic, dataset.has_label, dataset.has_difficulty, list(run.results.values())
    )


# -- the verdict --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    dataset: str
    criterion: str
    value: float | None
    reference: float | None
    higher_is_better: bool
    interval: tuple[float, float] | None = None  # 95% interval of the paired per-query difference

    @property
    def margin(self) -> float:
        """How far the candidate is on the right side of the reference (negative: it fails)."""
        if self.value is None or self.reference is None:
            return -math.inf
        return self.value - self.reference if self.higher_is_better else self.reference - self.value

    @property
    def ok(self) -> bool:
        return self.margin >= -EPSILON


Candidate = tuple[str, float | None, float | None]  # strategy, diversity, topic preference


@dataclass(frozen=True)
class DatasetResults:
    name: str
    has_topic: bool
    has_label: bool
    has_difficulty: bool
    results: list[RunResult]


def _key(result: RunResult, has_topic: bool) -> Candidate:
    diversity = None if result.diversity is None else round(result.diversity, 4)
    preference = None if not has_topic or result.topic_preference is None else round(result.topic_preference, 4)
    return result.spec.strategy, diversity, preference


def _rows(data: DatasetResults, difficulty: str | None) -> dict[Candidate, RunResult]:
    rows: dict[Candidate, RunResult] = {}
    for result in data.results:
        if result.summary is None or result.spec.is_baseline or result.spec.difficulty != difficulty:
            continue
        if result.spec.options:
            continue
        rows.setdefault(_key(result, data.has_topic), result)
    return rows


def candidates(datasets: Sequence[DatasetResults]) -> list[Candidate]:
    """Every (strategy, diversity, topic preference) run plainly on a labelled data set; the reference
    strategies (random) are baselines, not candidates."""
    found: dict[Candidate, None] = {}
    for data in sorted(datasets, key=lambda d: not d.has_topic):
        if data.has_label:
            for key in _rows(data, None):
                if key[0] not in REFERENCE_STRATEGIES:
                    found.setdefault(key, None)
    return list(found)


def paired_interval(a: RunResult, b: RunResult, metric: str) -> tuple[float, float] | None:
    """95% interval of the mean per-query difference a − b (normal approximation), over the queries where
    both runs define the metric; None unless both ran on the same queries."""
    if not a.scores or len(a.scores) != len(b.scores):
        return None
    pairs = [(getattr(x, metric), getattr(y, metric)) for x, y in zip(a.scores, b.scores, strict=True)]
    diffs = np.array([x - y for x, y in pairs if x is not None and y is not None], dtype=np.float64)
    if len(diffs) < 2:
        return None
    half = 1.96 * float(diffs.std(ddof=1)) / math.sqrt(len(diffs))
    return float(diffs.mean()) - half, float(diffs.mean()) + half


def _check(dataset: str, criterion: str, metric: str, run: RunResult, reference: RunResult, higher: bool) -> Check:
    assert run.summary is not None and reference.summary is not None
    return Check(
        dataset,
        criterion,
        getattr(run.summary, metric),
        getattr(reference.summary, metric),
        higher,
        paired_interval(run, reference, metric),
    )


def check(candidate: Candidate, datasets: Sequence[DatasetResults]) -> list[Check] | None:
    """The criterion's checks on every labelled data set; None when a data set lacks the candidate's runs."""
    checks: list[Check] = []
    strategy, diversity, preference = candidate
    for data in datasets:
        if not data.has_label:
            continue
        baseline = {r.spec.strategy: r for r in data.results if r.spec.is_baseline and r.summary}
        similar, diverse = baseline.get(LC_SIMILARITY), baseline.get(LC_MMR)
        key = (strategy, diversity, preference if data.has_topic else None)
        plain = _rows(data, None).get(key)
        if plain is None or similar is None or diverse is None:
            return None
        checks += [
            _check(data.name, "topic P ≥ LC sim", "topic_precision", plain, similar, True),
            _check(data.name, "ILS ≤ LC MMR", "intra_list_similarity", plain, diverse, False),
            _check(data.name, "label hit ≥ LC sim", "label_hit", plain, similar, True),
        ]
        if data.has_difficulty:
            matched = _rows(data, "match").get(key)
            if matched is None:
                return None
            checks.append(_check(data.name, "gap (match) ≤ LC sim", "difficulty_gap", matched, similar, False))
    return checks


def describe_checks(verdict: Verdict) -> str:
    """Each check as 'dataset criterion: value vs reference, difference [95% interval]'."""
    parts = []
    for c in verdict.checks:
        text = f"{c.dataset} {c.criterion}: {_cell(c.value, 3)} vs {_cell(c.reference, 3)}"
        if c.interval is not None:
            text += f", paired difference 95% interval [{c.interval[0]:+.3f}, {c.interval[1]:+.3f}]"
        parts.append(("✓ " if c.ok else "✗ ") + text)
    return "; ".join(parts)


def candidate_name(candidate: Candidate) -> str:
    strategy, diversity, preference = candidate
    parts = [strategy]
    if diversity is not None:
        parts.append(f"diversity {diversity:g}")
    if preference is not None:
        parts.append(f"topic_preference {preference:g}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def worst(self) -> Check:
        return min(self.checks, key=lambda c: c.margin)

    @property
    def shortfall(self) -> float:
        """The sum of the failing checks' margins (0 when all pass, more negative the further off)."""
        return sum(min(c.margin, 0.0) for c in self.checks)


def verdicts(datasets: Sequence[DatasetResults]) -> list[Verdict]:
    """Every candidate with complete runs, best first: passing ones, then by their worst margin (rounded to
    the table's 3 decimals), then by their total shortfall (the sum of the failing margins)."""
    found = []
    for candidate in candidates(datasets):
        checks = check(candidate, datasets)
        if checks:
            found.append(Verdict(candidate, checks))
    return sorted(found, key=lambda v: (not v.passed, -round(v.worst.margin, 3), -v.shortfall))


def verdict_table(found: Sequence[Verdict], limit: int | None = None) -> str:
    if not found:
        return "No candidate has complete runs on every labelled data set."
    shown = list(found if limit is None else found[:limit])
    criteria: list[tuple[str, str]] = []
    for c in shown[0].checks:
        if (c.dataset, c.criterion) not in criteria:
            criteria.append((c.dataset, c.criterion))
    head = ["candidate default", "verdict", "worst margin", *[f"{d}: {c}" for d, c in criteria]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for verdict in shown:
        by = {(c.dataset, c.criterion): c for c in verdict.checks}
        cells = [
            candidate_name(verdict.candidate),
            "**PASS**" if verdict.passed else "fail",
            f"{verdict.worst.margin:+.3f} ({verdict.worst.dataset} {verdict.worst.criterion})",
        ]
        for key in criteria:
            item = by.get(key)
            if item is None:
                cells.append("–")
            else:
                cells.append(f"{'✓' if item.ok else '✗'} {_cell(item.value, 3)} vs {_cell(item.reference, 3)}")
        lines.append("| " + " | ".join(cells) + " |")
    if limit is not None and len(found) > limit:
        lines.append(f"\n({len(found) - limit} more candidates, all with a lower worst margin, not shown)")
    return "\n".join(lines)
