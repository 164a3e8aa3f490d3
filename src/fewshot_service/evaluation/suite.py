"""Which runs make up an evaluation, shared by ``fewshot eval`` and benchmarks/quality.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..embedding import Embedder
from .baselines import BASELINES
from .datasets import DEFAULT_QUERIES, DEFAULT_SEED, Dataset, EvalQuery, load_dataset, sample_queries
from .runner import Evaluation, RunResult, RunSpec, baselines_available

# The strategies issue 5 asks for; any other name in STRATEGIES is evaluated too.
EXPECTED_STRATEGIES = ("knn", "mmr", "dpp", "coverage", "hybrid", "random")
FRONTIER_DIVERSITIES = (0.0, 0.2, 0.4, 0.6, 0.8)
# Reference points rather than candidates: run once, at the defaults (their picks ignore every preference).
REFERENCE_STRATEGIES = ("random",)


def available_strategies() -> list[str]:
    from ..selection import STRATEGIES

    return list(STRATEGIES)


def missing_strategies(wanted: Sequence[str] = EXPECTED_STRATEGIES) -> list[str]:
    have = set(available_strategies())
    return [name for name in wanted if name not in have]


@dataclass(frozen=True)
class Plan:
    """The runs of one data set, in groups: defaults, difficulty="match", the frontier, baselines."""

    defaults: list[RunSpec]
    matched: list[RunSpec]
    frontier: list[RunSpec]
    baselines: list[RunSpec]

    @property
    def all(self) -> list[RunSpec]:
        seen: dict[RunSpec, None] = {}
        for spec in [*self.defaults, *self.matched, *self.frontier, *self.baselines]:
            seen.setdefault(spec, None)
        return list(seen)


def plan(
    evaluation: Evaluation,
    strategies: Sequence[str],
    queries: Sequence[EvalQuery],
    k: int,
    *,
    diversities: Sequence[float] = (),
    topic_preferences: Sequence[float] = (),
    match_frontier: bool = True,
    baselines: bool = True,
) -> Plan:
    """Every strategy at the service's defaults; where difficulty is labelled, the same with
    difficulty="match"; each diversity-taking strategy at every listed diversity and, on data sets with
    topics, every run again at each listed topic preference; LangChain's two selectors. The reference
    strategies (random) run at the defaults only.

    Settings equal to the service's defaults are not run twice: the default run stands for them.
    """
    dataset = evaluation.dataset
    settings = evaluation.settings
    default_diversity = settings.default_diversity
    default_preference = getattr(settings, "default_topic_preference", None)
    have = set(available_strategies())
    preferences: list[float | None] = [None]
    if dataset.has_topic:
        preferences += [
            p for p in topic_preferences if default_preference is None or abs(p - default_preference) > 1e-9
        ]

    defaults = [RunSpec(name) for name in strategies]
    frontier: list[RunSpec] = []
    for name in strategies:
        if name in REFERENCE_STRATEGIES:
            continue
        takes = name in have and evaluation.uses_diversity(name)
        points: list[float | None] = [None]
        if takes:
            points += [d for d in diversities if abs(d - default_diversity) > 1e-9]
        for preference in preferences:
            for point in points:
                spec = RunSpec(name, diversity=point, topic_preference=preference)
                if spec not in defaults:
                    frontier.append(spec)
    matched: list[RunSpec] = []
    if dataset.has_difficulty:
        pool = defaults + (frontier if match_frontier else [])
        matched = [
            RunSpec(s.strategy, s.diversity, s.topic_preference, "match", s.options)
            for s in pool
            if s.strategy in have and s.strategy not in REFERENCE_STRATEGIES
        ]
    return Plan(defaults, matched, frontier, [RunSpec(name) for name in BASELINES] if baselines else [])


def run_all(
    evaluation: Evaluation,
    specs: Sequence[RunSpec],
    queries: Sequence[EvalQuery],
    k: int,
    log: Callable[[str], None] | None = None,
) -> dict[RunSpec, RunResult]:
    results: dict[RunSpec, RunResult] = {}
    for number, spec in enumerate(specs, start=1):
        result = evaluation.run(spec, queries, k)
        results[spec] = result
        if log is not None:
            summary = result.summary
            state = (
                f"not run: {result.error}"
                if summary is None
                else f"p50 {summary.latency_p50_ms:.1f} ms"
                if summary.latency_p50_ms is not None
                else "done"
            )
            log(f"{evaluation.dataset.name}: [{number}/{len(specs)}] {spec.name}: {state}")
    return results


@dataclass
class DatasetRun:
    """What one data set's evaluation produced."""

    dataset: Dataset
    bank_size: int
    queries: list[EvalQuery]
    k: int
    plan: Plan
    results: dict[RunSpec, RunResult]
    near_copies: int  # queries with a near copy (>= leakage threshold) in the bank: skipped, or kept
    kept_near_copies: bool
    missing: list[str]  # asked-for strategies the service does not have
    baseline_problem: str | None  # why the LangChain rows are absent

    def rows(self, specs: Sequence[RunSpec]) -> list[RunResult]:
        return [self.results[s] for s in specs if s in self.results]


def evaluate_dataset(
    name: str,
    data: Path,
    work_dir: Path,
    *,
    queries: int = DEFAULT_QUERIES,
    k: int = 4,
    strategies: Sequence[str] | None = None,
    diversities: Sequence[float] = (),
    topic_preferences: Sequence[float] = (),
    match_frontier: bool = True,
    baselines: bool = True,
    seed: int = DEFAULT_SEED,
    keep_near_copies: bool = False,
    arc_choices: bool = False,
    embedder: Embedder | None = None,
    log: Callable[[str], None] | None = None,
) -> DatasetRun:
    """Load a data set, build (or reuse) its bank under work_dir/<name>, run the plan, return the results.

    strategies: None runs every strategy the service has; names it lacks are reported and skipped.
    Queries with a near copy in the bank (cosine >= the leakage threshold) are left out of the sample
    unless keep_near_copies: the service's leakage guard hides such copies and LangChain's selectors
    return them, so keeping them compares the guard rather than the selection.
    """
    dataset = load_dataset(name, data, arc_choices=arc_choices)
    have = available_strategies()
    wanted = list(strategies) if strategies else have
    missing = [s for s in wanted if s not in have]
    chosen = [s for s in wanted if s in have]
    problem = baselines_available() if baselines else "not requested"
    folder = work_dir / (f"{name}-choices" if arc_choices and name == "arc" else name)
    with Evaluation(dataset, folder, embedder=embedder, log=log or (lambda _: None)) as evaluation:
        evaluation.prepare()
        if keep_near_copies:
            sample = sample_queries(dataset.queries, queries, seed)
            near = sum(evaluation.has_near_copy(sample))
        else:
            seen: list[bool] = []

            def clean(block: list[EvalQuery]) -> list[bool]:
                flags = evaluation.has_near_copy(block)
                seen.extend(flags)
                return [not flag for flag in flags]

            sample = sample_queries(dataset.queries, queries, seed, keep=clean)
            near = sum(seen)
        runs = plan(
            evaluation,
            chosen,
            sample,
            k,
            diversities=diversities,
            topic_preferences=topic_preferences,
            match_frontier=match_frontier,
            baselines=problem is None,
        )
        results = run_all(evaluation, runs.all, sample, k, log)
        size = evaluation.bank_size
    return DatasetRun(dataset, size, sample, k, runs, results, near, keep_near_copies, missing, problem)
