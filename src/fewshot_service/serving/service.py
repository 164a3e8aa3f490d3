"""The selector service: the only place where bank, embedder and index meet.

Start-up: create the schema, seed an empty bank, embed what lacks an embedding, then load the saved
index version and replay the bank's changes since it was built, or rebuild it when it was built for
another model, is damaged or does not exist. While serving, follower.py applies changes made by other
processes (catch_up) and adopts index versions they publish (adopt).
Selection: embed the prompt, search the index with the filters applied inside FAISS, drop near copies
of the prompt (leakage guard), let the strategy choose among the candidates, order, fetch from the bank.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..bank import SqlBank
from ..curation.seeding import default_seed_dir, load_seed_bank
from ..embedding import Embedder
from ..embedding.batching import MicroBatcher
from ..errors import FewshotError, IndexStoreError, InvalidInput, NotReady
from ..index import IndexManifest, IndexStore, VectorIndex
from ..models import Example, Explanation, SelectedExample, SelectRequest, SelectResponse
from ..selection import STRATEGIES, Candidates, Params, Pick, Preferences, apply_preferences, arrange
from ..settings import Settings
from .example_cache import ExampleCache
from .rebuild import build_version, embed_missing, index_options
from .rendering import as_messages, as_text, cost_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """The index being served and its manifest, swapped as one reference."""

    index: VectorIndex
    manifest: IndexManifest


@dataclass(frozen=True)
class StartReport:
    seeded: int
    embedded: int
    index_action: str  # "loaded" or "rebuilt"
    reason: str  # why it was rebuilt, or "manifest matches"
    index_version: str


class FewshotService:
    REBUILD_RUNNING = "a rebuild is running in this process"

    def __init__(
        self, settings: Settings, bank: SqlBank, load_embedder: Callable[[], Embedder], store: IndexStore
    ) -> None:
        """load_embedder is called once, at start: loading a model takes seconds, so it happens where
        readiness is reported, not in the constructor."""
        self.settings = settings
        self.bank = bank
        self._load_embedder = load_embedder
        self._embedder: Embedder | None = None
        self.store = store
        self._served: Served | None = None
        self._rebuild_lock = threading.Lock()
        # Held across "write the bank, then update the served index" so both change in the same order.
        self.write_lock = threading.Lock()
        self.phase = "not started"
        self.failure: str | None = None
        self.start_report: StartReport | None = None
        self.examples = ExampleCache(settings.example_cache_size)
        # Prompts of concurrent requests share model calls; a prompt seen lately is not embedded again.
        self.prompt_batcher = MicroBatcher(
            lambda texts: self.embedder.embed(texts), settings.embed_batch_size, settings.embed_lanes
        )
        self._prompt_vector = functools.lru_cache(maxsize=settings.query_cache_size)(self._embed_prompt)
        # The bank revision the served index reflects: every change up to it is in the index (changes made
        # through this process may be in it before that). Moved by index swaps and catch_up().
        self.applied_revision = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self.phase = "loading the embedding model"
            self._embedder = self._load_embedder()
        return self._embedder

    def wrap_embedder(self, wrap: Callable[[Embedder], Embedder]) -> None:
        """Decorate the model (with timing, say): at once when it is loaded, else as it loads at start."""
        if self._embedder is not None:
            self._embedder = wrap(self._embedder)
            return
        load = self._load_embedder
        self._load_embedder = lambda: wrap(load())

    @property
    def ready(self) -> bool:
        return self._served is not None

    def start(self) -> StartReport:
        """Make the service ready; safe to call from a background thread."""
        try:
            self.phase = "opening the bank"
            self.bank.create_schema()
            self.store.prepare()
            embedder = self.embedder
            seeded = 0
            if self.settings.seed_on_empty and self.bank.count() == 0:
                self.phase = "loading the seed bank"
                seed_dir = self.settings.seed_dir or default_seed_dir()
                seeded = load_seed_bank(self.bank, seed_dir).created
                log.info("empty bank: loaded %d seed examples from %s", seeded, seed_dir)
            self.phase = "embedding examples"
            embedded = embed_missing(self.bank, embedder)
            self.phase = "loading the index"
            action, reason = self._load_or_rebuild(embedder)
            self.phase = "caching examples"
            # Every served example in memory, so selects need no bank (ExampleCache.fill).
            assert self._served is not None
            self.examples.fill(self._served.index, self.bank)
        except FewshotError as exc:
            self.failure = exc.message
            self.phase = "failed"
            log.error("start-up failed: %s", exc.message)
            raise
        assert self._served is not None
        self.phase = "ready"
        self.start_report = StartReport(seeded, embedded, action, reason, self._served.manifest.version)
        log.info(
            "ready: %d examples in index version %s (%s: %s)",
            self._served.index.size,
            self._served.manifest.version,
            action,
            reason,
        )
        return self.start_report

    def _load_or_rebuild(self, embedder: Embedder) -> tuple[str, str]:
        version = self.store.current_version()
        reason = "no index version saved yet"
        if version is not None:
            try:
                index, manifest = self.store.load(version)
                unusable = self._unusable(manifest)
                if unusable is None:
                    with self.write_lock:
                        replayed = self._serve(index, manifest)
                    if manifest.bank_revision == self.applied_revision:
                        return "loaded", "manifest matches the bank and the model"
                    return "loaded", (
                        f"index at bank revision {manifest.bank_revision}, {replayed} change(s) replayed up to "
                        f"revision {self.applied_revision}"
                    )
                reason = unusable
            except IndexStoreError as exc:
                reason = exc.message
        log.warning("rebuilding the index: %s", reason)
        self.rebuild()
        return "rebuilt", reason

    def _unusable(self, manifest: IndexManifest) -> str | None:
        """Why a saved version cannot serve this model and bank even with the changes after it replayed."""
        mismatch = manifest.model_mismatch(model_id=self.embedder.model_id, dim=self.embedder.dim)
        if mismatch is None and manifest.bank_revision > (revision := self.bank.revision()):
            mismatch = f"index is at bank revision {manifest.bank_revision}, ahead of the bank ({revision})"
        return mismatch

    def _serve(self, index: VectorIndex, manifest: IndexManifest) -> int:
        """Replay the bank's changes since the manifest's revision into index, then serve it (searches in
        flight finish on the old one); how many changes were replayed. The caller holds write_lock."""
        target = self.bank.revision()  # read first: the changes read next include everything up to it
        rows, gone = self.bank.changes_since(manifest.bank_revision, self.embedder.model_id)
        index.upsert(rows)
        index.remove(gone)
        if self._served is not None:  # a swap while serving (at start, fill() runs once the phase says so)
            self.examples.fill(index, self.bank)
        self._served = Served(index, manifest)
        self.applied_revision = target
        return len(rows) + len(gone)

    def rebuild(self) -> IndexManifest:
        """Build a new index version from the bank, publish and serve it."""
        with self._rebuild_lock:
            index, manifest = build_version(
                self.bank,
                self.embedder,
                self.store,
                options=index_options(self.settings),
            )
            with self.write_lock:
                # Curator writes that landed while the build read the bank are replayed before the swap.
                self._serve(index, manifest)
            return manifest

    def catch_up(self) -> int:
        """Apply the bank's changes since applied_revision (made by other replicas or commands) to the served
        index; how many. Changes this process made are in the index already: re-applying them is harmless."""
        if self._served is None or self.bank.revision() <= self.applied_revision:
            return 0  # the common case, checked without holding up curator writes
        with self.write_lock:
            served = self._served  # read under the lock: an adopt or rebuild may have swapped it
            if served is None:
                return 0
            target = self.bank.revision()
            rows, gone = self.bank.changes_since(self.applied_revision, self.embedder.model_id)
            served.index.upsert(rows)
            served.index.remove(gone)
            self.examples.fill(served.index, self.bank, [row.id for row in rows])
            self.applied_revision = target
        return len(rows) + len(gone)

    def adopt(self, version: str) -> str | None:
        """Serve an index version another process published, with the changes after it replayed; why it
        was not adopted (another model, older than the served one), or None when it was."""
        served = self.served()
        if version == served.manifest.version:
            return "it is already served"
        log.info("loading index version %s published by another process", version)
        index, manifest = self.store.load(version)  # the slow part, outside the lock
        unusable = self._unusable(manifest)
        if unusable is None and manifest.bank_revision < served.manifest.bank_revision:
            unusable = (
                f"it is at bank revision {manifest.bank_revision}, the served one at {served.manifest.bank_revision}"
            )
        if unusable is not None:
            return unusable
        # Never wait for a rebuild running here (minutes on a large bank): the caller, the follower, would stop
        # applying the change feed meanwhile. The rebuild's own version supersedes this one anyway.
        if not self._rebuild_lock.acquire(blocking=False):
            return self.REBUILD_RUNNING
        try:
            with self.write_lock:
                replayed = self._serve(index, manifest)
        finally:
            self._rebuild_lock.release()
        log.info(
            "adopted index version %s (bank revision %d, %d change(s) replayed)",
            version,
            manifest.bank_revision,
            replayed,
        )
        return None

    def served(self) -> Served:
        served = self._served
        if served is None:
            raise NotReady(self.failure or f"the service is starting ({self.phase})")
        return served

    # -- selection ----------------------------------------------------------------------------
    def select(self, request: SelectRequest) -> SelectResponse:
        started = time.perf_counter()
        served = self.served()
        strategy_name = request.strategy or self.settings.default_strategy
        strategy = STRATEGIES.get(strategy_name)
        if strategy is None:
            raise InvalidInput(
                f"unknown strategy {strategy_name!r}; choose one of {', '.join(STRATEGIES)}", field="strategy"
            )
        diversity = self.settings.default_diversity if request.diversity is None else request.diversity
        count_tokens = self._token_counter(request.tokenizer) if request.max_tokens else None
        query = self._prompt_vector(request.prompt)
        index = served.index
        rng = np.random.default_rng(request.seed)

        topic_weight = (
            self.settings.default_topic_preference if request.topic_preference is None else request.topic_preference
        )
        # Preferences and budgets re-rank: even knn then needs a pool to choose from, not just k.
        reranks = topic_weight > 0 or request.difficulty_target is not None or request.difficulty or request.max_tokens
        wanted = strategy.candidates(request.k, self.settings.candidate_factor)
        if reranks:
            wanted = max(wanted, request.k * self.settings.candidate_factor)
        if strategy.name == "random":
            slots = index.sample(wanted, request.filters, request.exclude_ids, rng)
            vectors = index.vectors(slots)
            relevance = vectors @ query
            keep = relevance < self.settings.leakage_threshold
            slots, vectors, relevance = slots[keep], vectors[keep], relevance[keep]
        else:
            slots, relevance = self._candidates(index, query, request, wanted)
            vectors = index.vectors(slots)
        topics, difficulties = index.attributes(slots)
        score, preferences = apply_preferences(
            relevance,
            topics,
            difficulties,
            topic_weight=topic_weight,
            difficulty_target=request.difficulty_target,
            match_difficulty=request.difficulty == "match",
            difficulty_weight=self.settings.difficulty_weight,
            neighbours=self.settings.preference_neighbours,
        )
        ids = index.ids(slots)
        # The pool's texts are read only when a strategy reads them or a budget counts them.
        pool_examples = self._examples(ids, index.revisions(slots)) if strategy.needs_texts or count_tokens else {}
        costs = None
        if count_tokens is not None:
            costs = np.array(count_tokens([cost_text(pool_examples[i]) if i in pool_examples else "" for i in ids]))
        pool = Candidates(
            vectors=vectors,
            relevance=relevance,
            score=score,
            topics=topics,
            difficulties=difficulties,
            texts=[pool_examples[i].input if i in pool_examples else "" for i in ids] if strategy.needs_texts else None,
            query_text=request.prompt,
            costs=costs,
        )
        steered = request.difficulty_target is not None or request.difficulty == "match"
        params = Params(
            request.k,
            diversity,
            request.max_tokens,
            rng,
            difficulty_steered=steered,
            neighbours=self.settings.preference_neighbours,
        )
        picks = strategy.pick(pool, params)
        picks = arrange(picks, request.order, {p.position: float(difficulties[p.position]) for p in picks})
        chosen_ids = [ids[p.position] for p in picks]
        stored = {i: pool_examples[i] for i in chosen_ids if i in pool_examples} or self._examples(
            chosen_ids, index.revisions(np.array([slots[p.position] for p in picks], dtype=np.int64))
        )
        examples = [
            self._selected(stored[i], pick, preferences, topics[pick.position], difficulties[pick.position], costs)
            for i, pick in zip(chosen_ids, picks, strict=True)
            if i in stored  # an example deleted since indexing is skipped, never invented
        ]
        return SelectResponse(
            examples=examples,
            strategy=strategy.name,
            diversity=diversity if strategy.uses_diversity else None,
            index_version=served.manifest.version,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
            estimated_topic=preferences.topic,
            difficulty_target=preferences.difficulty_target,
            tokens=int(sum(costs[p.position] for p in picks)) if costs is not None else None,
            messages=as_messages(examples, request.include_steps) if request.format == "messages" else None,
            text=as_text(examples, request.template, request.include_steps) if request.format == "text" else None,
        )

    def _embed_prompt(self, prompt: str) -> np.ndarray:
        vector = self.prompt_batcher.embed_one(prompt)
        vector.flags.writeable = False  # shared by every request with this prompt while it stays cached
        return vector

    def _examples(self, ids: list[str], revisions: np.ndarray) -> dict[str, Example]:
        """These examples as the index knows them: from memory when cached at the indexed revision."""
        found, missing = self.examples.get(ids, revisions.tolist())
        if missing:
            fetched = self.bank.get_many_with_revisions(missing)
            self.examples.put(fetched.values())
            found.update((example_id, example) for example_id, (_, example) in fetched.items())
        return found

    def _token_counter(self, tokenizer: str) -> Callable[[list[str]], list[int]]:
        if tokenizer == "model":
            return lambda texts: self.embedder.count_tokens(texts)
        try:
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base")
        except Exception as exc:  # not installed, or its BPE file is not on disk (nothing is downloaded)
            raise InvalidInput(
                f"tiktoken is not available offline here ({type(exc).__name__}); use tokenizer=model",
                field="tokenizer",
            ) from exc
        return lambda texts: [len(encoding.encode(text)) for text in texts]

    def _candidates(
        self, index: VectorIndex, query: np.ndarray, request: SelectRequest, wanted: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to `wanted` filtered candidates, best first, with near copies of the prompt removed.

        The search asks for a little more than wanted to make room for the leaked ones, and widens
        until it has enough or has seen every example that passes the filters.
        """
        threshold = self.settings.leakage_threshold
        asked = wanted + request.k
        while True:
            hits = index.search(query, asked, request.filters, request.exclude_ids)
            keep = hits.scores < threshold
            if int(keep.sum()) >= wanted or len(hits.slots) < asked:
                return hits.slots[keep][:wanted], hits.scores[keep][:wanted]
            asked *= 4

    @staticmethod
    def _selected(
        example: Example,
        pick: Pick,
        preferences: Preferences,
        topic: str | None,
        difficulty: float,
        costs: np.ndarray | None,
    ) -> SelectedExample:
        why = Explanation(
            relevance=round(pick.relevance, 4),
            score=round(pick.score, 4),
            redundancy=round(pick.redundancy, 4),
            topic_match=None if preferences.topic is None or topic is None else topic == preferences.topic,
            difficulty_gap=None
            if preferences.difficulty_target is None or np.isnan(difficulty)
            else round(abs(difficulty - preferences.difficulty_target), 2),
            tokens=int(costs[pick.position]) if costs is not None else None,
            reason=pick.reason,
        )
        # Stored examples were validated on the way in; copying fields skips a second validation.
        return SelectedExample.model_construct(**example.__dict__, score=round(pick.relevance, 4), why=why)
