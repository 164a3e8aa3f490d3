"""The selector service: the only place where bank, embedder and index meet.

Start-up: create the schema, seed an empty bank, embed what lacks an embedding, then load the saved
index version, or rebuild it when its manifest does not match the bank or the model.
Selection: embed the prompt, search the index with the filters applied inside FAISS, drop near copies
of the prompt (leakage guard), let the strategy choose among the candidates, order, fetch from the bank.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .bank import SqlBank
from .embedding import Embedder
from .errors import FewshotError, IndexStoreError, InvalidInput, NotReady
from .index import IndexManifest, IndexStore, VectorIndex
from .models import Example, SelectedExample, SelectRequest, SelectResponse
from .rebuild import build_version, embed_missing
from .seeding import default_seed_dir, load_seed_bank
from .selection import STRATEGIES, Pick, arrange
from .settings import Settings

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

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self.phase = "loading the embedding model"
            self._embedder = self._load_embedder()
        return self._embedder

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
            embedded = embed_missing(self.bank, embedder, batch_size=self.settings.embed_batch_size)
            self.phase = "loading the index"
            action, reason = self._load_or_rebuild(embedder)
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
                mismatch = manifest.mismatch(
                    model_id=embedder.model_id, dim=embedder.dim, bank_revision=self.bank.revision()
                )
                if mismatch is None:
                    self._served = Served(index, manifest)
                    return "loaded", "manifest matches the bank and the model"
                reason = mismatch
            except IndexStoreError as exc:
                reason = exc.message
        log.warning("rebuilding the index: %s", reason)
        self.rebuild()
        return "rebuilt", reason

    def rebuild(self) -> IndexManifest:
        """Build a new index version from the bank and serve it; searches in flight finish on the old one."""
        with self._rebuild_lock:
            index, manifest = build_version(
                self.bank, self.embedder, self.store, batch_size=self.settings.embed_batch_size
            )
            with self.write_lock:
                # Curator writes that landed while the build read the bank are replayed before the swap.
                rows, gone = self.bank.changes_since(manifest.bank_revision, self.embedder.model_id)
                index.upsert(rows)
                index.remove(gone)
                self._served = Served(index, manifest)
            return manifest

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
        query = self.embedder.embed([request.prompt])[0]

        wanted = strategy.candidates(request.k, self.settings.candidate_factor)
        slots, relevance = self._candidates(served.index, query, request, wanted)
        vectors = served.index.vectors(slots)
        picks = arrange(strategy.pick(vectors, relevance, request.k, diversity), request.order)
        chosen_ids = served.index.ids(slots[p.position] for p in picks)
        stored = self.bank.get_many(chosen_ids)
        examples = [
            self._selected(stored[i], pick) for i, pick in zip(chosen_ids, picks, strict=True) if i in stored
        ]  # an example deleted since indexing is skipped, never invented
        return SelectResponse(
            examples=examples,
            strategy=strategy.name,
            diversity=diversity,
            index_version=served.manifest.version,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
        )

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
    def _selected(example: Example, pick: Pick) -> SelectedExample:
        # Stored examples were validated on the way in; copying fields skips a second validation.
        return SelectedExample.model_construct(**example.__dict__, score=round(pick.relevance, 4))
