"""The service's lifecycle: where bank, embedder and index meet, and when it is ready to serve.

Start-up: create the schema, load the embedding model (once, under a lock), seed an empty bank, embed what
lacks an embedding, then load the saved index version and replay the bank's changes since it was built, or
rebuild it when it was built for another model, is damaged or does not exist. While serving, follower.py
applies changes made by other processes (catch_up) and adopts index versions they publish (adopt); every
change reaches the index through writes.py, and selector.py answers /v1/select.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..bank import SqlBank
from ..embedding import Embedder
from ..embedding.batching import MicroBatcher
from ..errors import FewshotError, IndexStoreError, NotReady
from ..index import IndexManifest, IndexStore, VectorIndex
from ..models import SelectRequest, SelectResponse
from ..selection.utility import UtilityBoard
from ..settings import Settings
from .example_cache import ExampleCache
from .rebuild import build_version, embed_missing, index_options
from .seed_vectors import store_seed_vectors
from .seeding import default_seed_dir, load_seed_bank
from .selector import Selector
from .writes import Served, WritePath

log = logging.getLogger(__name__)


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
        self._model_lock = threading.Lock()
        self._starting = False
        # True from start() until it has cached the examples and logged its report: an index is served
        # (_served) before that, but a prober told "ready" then would find neither.
        self._start_pending = False
        self.store = store
        self._served: Served | None = None
        self._rebuild_lock = threading.Lock()
        self.examples = ExampleCache(settings.example_cache_size)
        self.writes = WritePath(bank, self.served, lambda: self.embedder, self.examples)
        self.phase = "not started"
        self.failure: str | None = None
        self.start_report: StartReport | None = None
        # Per-example utility from reported outcomes (feedback/), refreshed by the feedback service.
        self.utilities = UtilityBoard()
        self.selector = Selector(settings, bank, self.examples, self.served, lambda: self.embedder, self.utilities)
        # The bank revision the served index reflects: every change up to it is in the index (changes made
        # through this process may be in it before that). Moved by index swaps and catch_up().
        self.applied_revision = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The embedding model. A started service loads it in start(), and until then a request is told the
        service is starting rather than made to wait; a command that never starts the service loads it here."""
        embedder = self._embedder
        if embedder is not None:
            return embedder
        if self._starting:
            raise NotReady(self.failure or f"the service is starting ({self.phase})")
        return self._load_model()

    def _load_model(self) -> Embedder:
        with self._model_lock:
            if self._embedder is None:
                self._embedder = self._load_embedder()
            return self._embedder

    def wrap_embedder(self, wrap: Callable[[Embedder], Embedder]) -> None:
        """Decorate the model (with timing, say): at once when it is loaded, else as it loads at start."""
        with self._model_lock:
            if self._embedder is not None:
                self._embedder = wrap(self._embedder)
                return
            load = self._load_embedder
            self._load_embedder = lambda: wrap(load())

    @property
    def write_lock(self) -> threading.RLock:
        """The write path's lock (writes.WritePath.lock)."""
        return self.writes.lock

    @property
    def prompt_batcher(self) -> MicroBatcher:
        return self.selector.prompt_batcher

    @property
    def ready(self) -> bool:
        return self._served is not None and not self._start_pending

    def start(self) -> StartReport:
        """Make the service ready; safe to call from a background thread."""
        self._starting = True  # from here on, the model is this thread's to load
        self._start_pending = True
        try:
            self.phase = "opening the bank"
            self.bank.create_schema()
            self.store.prepare()
            self.phase = "loading the embedding model"
            embedder = self._load_model()
            seeded = 0
            if self.settings.seed_on_empty and self.bank.count() == 0:
                self.phase = "loading the seed bank"
                seed_dir = self.settings.seed_dir or default_seed_dir()
                seeded = load_seed_bank(self.bank, seed_dir).created
                shipped = store_seed_vectors(self.bank, embedder, seed_dir)
                log.info(
                    "empty bank: loaded %d seed examples from %s (%d with their shipped embeddings)",
                    seeded, seed_dir, shipped,
                )  # fmt: skip
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
        self._start_pending = False  # after the log line: whoever sees "ready" can read why in the log
        return self.start_report

    def _load_or_rebuild(self, embedder: Embedder) -> tuple[str, str]:
        version = self.store.current_version()
        reason = "no index version saved yet"
        if version is not None:
            try:
                index, manifest = self.store.load(version)
                unusable = self._unusable(manifest)
                if unusable is None:
                    with self.writes.lock:
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
        # Building the first index is normal first use, not a problem worth a warning.
        log.log(logging.INFO if version is None else logging.WARNING, "rebuilding the index: %s", reason)
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
        flight finish on the old one); how many changes were replayed. The caller holds the write lock."""
        target, replayed = self.writes.replay(index, manifest.bank_revision)
        if self._served is not None:  # a swap while serving (at start, fill() runs once the index is served)
            self.examples.fill(index, self.bank)
        self._served = Served(index, manifest)
        self.applied_revision = target
        return replayed

    def rebuild(self) -> IndexManifest:
        """Build a new index version from the bank, publish and serve it."""
        with self._rebuild_lock:
            index, manifest = build_version(
                self.bank,
                self.embedder,
                self.store,
                options=index_options(self.settings),
            )
            with self.writes.lock:
                # Curator writes that landed while the build read the bank are replayed before the swap.
                self._serve(index, manifest)
            return manifest

    def catch_up(self) -> int:
        """Apply the bank's changes since applied_revision (made by other replicas or commands) to the served
        index; how many. Changes this process made are in the index already: re-applying them is harmless."""
        if self._served is None or self.bank.revision() <= self.applied_revision:
            return 0  # the common case, checked without holding up curator writes
        with self.writes.lock:
            served = self._served  # read under the lock: an adopt or rebuild may have swapped it
            if served is None:
                return 0
            self.applied_revision, applied = self.writes.replay(served.index, self.applied_revision, cache=True)
        return applied

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
            with self.writes.lock:
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
        if served is None or self._start_pending:
            raise NotReady(self.failure or f"the service is starting ({self.phase})")
        return served

    def select(self, request: SelectRequest) -> SelectResponse:
        """Examples for a prompt (selector.py)."""
        return self.selector.select(request)
