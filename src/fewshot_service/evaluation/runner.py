"""Runs selectors over one data set's bank and queries and measures them (issue 5).

``Evaluation`` imports the data set into an in-process service under a work directory (SQLite bank and
index versions, kept for reruns: an unchanged data set is neither re-imported nor re-embedded), embeds
the sampled queries once, then runs each ``RunSpec`` over every query with ``FewshotService.select``,
timing each call. The picks' embeddings come from the served index, so nothing is embedded twice, and the
picks are put in rank order (most relevant first) before scoring, whatever order a selector returned.
LangChain's selectors (``baselines``) run over the same stored vectors and are scored the same way.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embedding import Embedder
from ..errors import InvalidInput
from ..models import ExampleImport, SelectRequest
from ..serving.lifecycle import FewshotService
from ..serving.rebuild import embed_missing
from ..settings import Settings
from .baselines import BASELINE_TITLES, BASELINES, BaselineUnavailable, Select, langchain_selectors
from .datasets import DEFAULT_SEED, Dataset, EvalQuery
from .metrics import Labels, QueryScores, Summary, aggregate, score_query

Log = Callable[[str], None]
FINGERPRINT_FILE = "records.sha256"
IMPORT_BATCH = 1000


@dataclass(frozen=True)
class RunSpec:
    """One row of the table: a service strategy with its request options, or a LangChain baseline."""

    strategy: str  # a name in fewshot_service.selection.STRATEGIES, or one of baselines.BASELINES
    diversity: float | None = None  # None: the service's default
    topic_preference: float | None = None  # None: the service's default
    difficulty: str | None = None  # "match"
    options: tuple[tuple[str, Any], ...] = ()  # any other SelectRequest fields

    @property
    def is_baseline(self) -> bool:
        return self.strategy in BASELINES

    @property
    def name(self) -> str:
        if self.is_baseline:
            return BASELINE_TITLES[self.strategy]
        parts = [self.strategy]
        if self.diversity is not None:
            parts.append(f"d={self.diversity:g}")
        if self.topic_preference is not None:
            parts.append(f"tp={self.topic_preference:g}")
        if self.difficulty is not None:
            parts.append(f"difficulty={self.difficulty}")
        parts += [f"{key}={value}" for key, value in self.options]
        return " ".join(parts)

    def request(self, prompt: str, k: int, seed: int) -> SelectRequest:
        fields: dict[str, Any] = {"prompt": prompt, "k": k, "strategy": self.strategy, "seed": seed}
        for key, value in (
            ("diversity", self.diversity),
            ("topic_preference", self.topic_preference),
            ("difficulty", self.difficulty),
        ):
            if value is not None:
                fields[key] = value
        fields.update(dict(self.options))
        return SelectRequest(**fields)


@dataclass
class RunResult:
    spec: RunSpec
    summary: Summary | None
    diversity: float | None = None  # the diversity the service used (its default when the spec names none)
    topic_preference: float | None = None  # the one it used (likewise); None for the baselines
    near_copies: int = 0  # picks at least leakage_threshold similar to their query (the guard drops these)
    error: str | None = None
    scores: list[QueryScores] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "selector": self.name,
            "strategy": self.spec.strategy,
            "diversity": self.diversity,
            "topic_preference": self.topic_preference,
            "difficulty": self.spec.difficulty,
            "options": dict(self.spec.options),
            "near_copies": self.near_copies,
            "error": self.error,
            **(self.summary.as_dict() if self.summary else {}),
        }


def fingerprint(records: Iterable[ExampleImport]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(record.model_dump_json().encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _quiet(_: str) -> None:
    pass


class Evaluation:
    """One data set in an in-process service; use as a context manager (closes the bank)."""

    def __init__(
        self,
        dataset: Dataset,
        work_dir: Path,
        *,
        embedder: Embedder | None = None,
        log: Log = _quiet,
        **settings: Any,
    ) -> None:
        self.dataset = dataset
        self.work_dir = work_dir
        self.log = log
        self.settings = Settings(
            data_dir=work_dir / "data",
            index_dir=work_dir / "indexes",
            database_url=None,  # never the FEWSHOT_DATABASE_URL bank
            seed_on_empty=False,
            **settings,
        )
        self._embedder = embedder
        self.service = self._build_service()
        self.labels: dict[str, Labels] = {}
        self.texts: dict[str, str] = {}
        self.ids: list[str] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.slot_of: dict[str, int] = {}
        self._baselines: dict[tuple[int, str], Select] = {}
        self._query_vectors: dict[str, np.ndarray] = {}

    def _build_service(self) -> FewshotService:
        if self._embedder is None:
            from ..api import build_service

            return build_service(self.settings)
        from ..bank import SqlBank
        from ..index import IndexStore

        embedder = self._embedder
        return FewshotService(
            self.settings,
            SqlBank(self.settings.resolved_database_url()),
            lambda: embedder,
            IndexStore(self.settings.index_dir, self.settings.keep_index_versions),
        )

    def __enter__(self) -> Evaluation:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.service.bank.close()

    # -- the bank --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Import the bank unless the work dir already holds exactly these records, embed, start."""
        records = self.dataset.records
        wanted = fingerprint(records)
        marker = self.work_dir / FINGERPRINT_FILE
        bank = self.service.bank
        self.work_dir.mkdir(parents=True, exist_ok=True)
        bank.create_schema()
        cached = marker.is_file() and marker.read_text().strip() == wanted and bank.count() == len(records)
        if not cached:
            if bank.count() > 0:
                # Stale: re-import over it; if the data set lost records, start from an empty bank.
                marker.unlink(missing_ok=True)
                ids = {r.external_id for r in records}
                if any(e.external_id not in ids for e in bank.iter_examples()):
                    self.log(f"{self.dataset.name}: the cached bank holds other records; starting afresh")
                    self._reset()
                    bank = self.service.bank
                    bank.create_schema()
            started = time.perf_counter()
            for start in range(0, len(records), IMPORT_BATCH):
                bank.upsert(records[start : start + IMPORT_BATCH])
                self.log(f"{self.dataset.name}: imported {min(start + IMPORT_BATCH, len(records))}/{len(records)}")
            self.log(f"{self.dataset.name}: import took {time.perf_counter() - started:.1f}s")
        embedder = self.service.embedder
        pending = bank.count_unembedded(embedder.model_id)
        if pending:
            started = time.perf_counter()
            done = [0]

            def progress(n: int) -> None:
                done[0] += n
                if done[0] % 2048 < n or done[0] == pending:
                    self.log(f"{self.dataset.name}: embedded {done[0]}/{pending}")

            embed_missing(bank, embedder, on_progress=progress)
            self.log(f"{self.dataset.name}: embedding took {time.perf_counter() - started:.1f}s")
        report = self.service.start()
        marker.write_text(wanted + "\n")
        self.log(f"{self.dataset.name}: index {report.index_action} ({report.reason})")
        self._load_lookup()

    def _reset(self) -> None:
        self.service.bank.close()
        shutil.rmtree(self.settings.data_dir, ignore_errors=True)
        shutil.rmtree(self.settings.index_dir, ignore_errors=True)
        self.service = self._build_service()

    def _load_lookup(self) -> None:
        """Labels and inputs of every bank example, and the served index's vectors (read once)."""
        for example in self.service.bank.iter_examples():
            label = example.metadata.get("label")
            self.labels[example.id] = Labels(example.topic, None if label is None else str(label), example.difficulty)
            self.texts[example.id] = example.input
        index = self.service.served().index
        self.ids = list(index.slots.ids)
        self.slot_of = dict(index.slots.slot_of)
        self.vectors = index.vectors(np.arange(len(self.ids), dtype=np.int64))

    @property
    def bank_size(self) -> int:
        return self.service.served().index.size

    # -- queries ---------------------------------------------------------------------------------
    def query_vectors(self, queries: Sequence[EvalQuery]) -> np.ndarray:
        """The queries' embeddings (computed once per query, in one batch)."""
        missing = [q for q in queries if q.id not in self._query_vectors]
        if missing:
            for query, vector in zip(missing, self.service.embedder.embed([q.text for q in missing]), strict=True):
                self._query_vectors[query.id] = vector
        return np.stack([self._query_vectors[q.id] for q in queries])

    def has_near_copy(self, queries: Sequence[EvalQuery]) -> list[bool]:
        """For each query, whether the bank holds an example at least leakage_threshold similar to it:
        the service's leakage guard never returns such an example, LangChain's selectors do."""
        if not queries:
            return []
        vectors = self.query_vectors(queries)
        best = (vectors @ self.vectors.T).max(axis=1) if len(self.vectors) else np.zeros(len(queries))
        return [bool(b >= self.settings.leakage_threshold) for b in best]

    # -- runs ------------------------------------------------------------------------------------
    def run(self, spec: RunSpec, queries: Sequence[EvalQuery], k: int, *, warmup: int = 2) -> RunResult:
        """Every query through one selector; a selector that fails is reported, not raised."""
        try:
            select = self._selector(spec, k)
            for query in queries[:warmup]:
                select(query.text, 0)
        except Exception as exc:  # an unknown strategy, a missing optional dependency, a bug in a selector
            return RunResult(spec, None, error=f"{type(exc).__name__}: {exc}")
        vectors = self.query_vectors(queries)
        scores: list[QueryScores] = []
        used: list[float | None] = []
        near = 0
        threshold = self.settings.leakage_threshold
        for number, (query, query_vector) in enumerate(zip(queries, vectors, strict=True)):
            started = time.perf_counter()
            try:
                ids, diversity = select(query.text, DEFAULT_SEED + number)
            except Exception as exc:
                return RunResult(spec, None, error=f"query {query.id}: {type(exc).__name__}: {exc}")
            elapsed_ms = (time.perf_counter() - started) * 1000
            used.append(diversity)
            slots = [self.slot_of[i] for i in ids if i in self.slot_of]
            pick_vectors = self.vectors[slots]
            relevance = pick_vectors @ query_vector
            order = np.argsort(-relevance, kind="stable")  # rank order: most relevant first
            near += int((relevance >= threshold).sum())
            picks = [self.labels[self.ids[slots[i]]] for i in order]
            scores.append(score_query(query.labels, picks, query_vector, pick_vectors[order], elapsed_ms))
        diversity = used[0] if used else spec.diversity
        if not spec.is_baseline and not self.uses_diversity(spec.strategy):
            diversity = None  # shown as "–": this strategy ignores the setting
        return RunResult(spec, aggregate(scores), diversity, self._topic_preference(spec), near, scores=scores)

    @staticmethod
    def uses_diversity(strategy: str) -> bool:
        """Whether the strategy's picks move with diversity (each strategy declares it)."""
        from ..selection import STRATEGIES

        return strategy in STRATEGIES and STRATEGIES[strategy].uses_diversity

    def _topic_preference(self, spec: RunSpec) -> float | None:
        if spec.is_baseline:
            return None
        if spec.topic_preference is not None:
            return spec.topic_preference
        return getattr(self.settings, "default_topic_preference", None)

    def _selector(self, spec: RunSpec, k: int) -> Callable[[str, int], tuple[list[str], float | None]]:
        """(prompt, seed) -> (ids, diversity used)."""
        if spec.is_baseline:
            select = self._baseline(spec.strategy, k)
            return lambda prompt, _seed: (select(prompt), None)
        from ..selection import STRATEGIES

        if spec.strategy not in STRATEGIES:
            available = ", ".join(STRATEGIES)
            raise InvalidInput(f"strategy {spec.strategy!r} is not available (have {available})", field="strategy")
        spec.request("probe", k, 0)  # invalid options fail here, before any query

        def select_one(prompt: str, seed: int) -> tuple[list[str], float | None]:
            response = self.service.select(spec.request(prompt, k, seed))
            return [example.id for example in response.examples], response.diversity

        return select_one

    def _baseline(self, name: str, k: int) -> Select:
        if (k, name) not in self._baselines:
            texts = [self.texts.get(i, "") for i in self.ids]
            selectors = langchain_selectors(self.ids, texts, self.vectors, self.service.embedder.embed, k)
            for key, select in selectors.items():
                self._baselines[(k, key)] = select
        return self._baselines[(k, name)]


def baselines_available() -> str | None:
    """None when LangChain can be imported, else why not."""
    try:
        import langchain_community.vectorstores  # noqa: F401
        import langchain_core.example_selectors  # noqa: F401
    except ImportError as exc:
        return str(BaselineUnavailable(f"LangChain is not installed ({exc}); pip install -e '.[bench]'"))
    return None
