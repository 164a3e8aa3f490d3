"""The one write path: every bank change the served index must reflect reaches it through WritePath.apply.

Curator writes, imports and quality scores (commit, then sync by id), changes made by other processes
(catch-up) and the replay before an index version is served (replay, by bank revision) all end in apply.
A write is refused while the service is starting, before anything is computed or committed: a client that
retries a 503 must not find its first attempt stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..bank import SqlBank
from ..embedding import Embedder
from ..index import IndexManifest, VectorIndex
from ..models import IndexRow
from .example_cache import ExampleCache

T = TypeVar("T")


@dataclass(frozen=True)
class Served:
    """The index being served and its manifest, swapped as one reference."""

    index: VectorIndex
    manifest: IndexManifest


class WritePath:
    def __init__(
        self,
        bank: SqlBank,
        served: Callable[[], Served],
        embedder: Callable[[], Embedder],
        examples: ExampleCache | None = None,
    ) -> None:
        """served raises NotReady until the service is ready; embedder is the model loaded at start; examples,
        the cache that must hold what the index serves (so selects need no bank), is filled after each change."""
        self.bank = bank
        self._examples = examples
        self._served = served
        self._embedder = embedder
        # Held across "write the bank, then apply it to the index", so both change in the same order.
        # Reentrant: a curation rule may hold it across its own check and the write that follows.
        self.lock = threading.RLock()

    def embedder(self) -> Embedder:
        """The model a write embeds with; NotReady (503) while the service is starting."""
        self._served()
        return self._embedder()

    def commit(self, write: Callable[[], T], changed: Callable[[T], Iterable[str]]) -> T:
        """Run write (one bank transaction) and apply the rows it changed (changed(result)) to the served index;
        refused with NotReady before write runs while the service is starting."""
        self._served()
        with self.lock:
            result = write()
            self.sync(changed(result))
        return result

    def refresh(self, ids: Iterable[str]) -> int:
        """Apply what the bank already holds for these ids, for a write made in several transactions (an import,
        then its embeddings) whose caller checked readiness (embedder()) before the first."""
        with self.lock:
            return self.sync(ids)

    def sync(self, ids: Iterable[str]) -> int:
        """Bring the served index in line with what the bank holds for these ids; the caller holds lock."""
        # One read for the index and the cache: on PostgreSQL every query is several round trips, and a write
        # holds the write lock across them.
        rows, gone, examples = self.bank.synced(list(ids), self._embedder().model_id)
        changes = self.apply(self._served().index, rows, gone)
        if self._examples is not None:
            self._examples.put(examples)
        return changes

    def replay(self, index: VectorIndex, since: int, *, cache: bool = False) -> tuple[int, int]:
        """Apply the bank's changes after revision `since` to index; (the revision it now reflects, how many
        changes). cache: also read the changed examples into the cache (an index already served). The caller
        holds lock."""
        target = self.bank.revision()  # read first: the changes read next include everything up to it
        rows, gone = self.bank.changes_since(since, self._embedder().model_id)
        changes = self.apply(index, rows, gone)
        if cache and self._examples is not None:
            self._examples.fill(index, self.bank, [row.id for row in rows])
        return target, changes

    @staticmethod
    def apply(index: VectorIndex, rows: Sequence[IndexRow], gone: Sequence[str]) -> int:
        """Changed rows upserted, removed ids tombstoned; how many changes."""
        index.upsert(rows)
        index.remove(gone)
        return len(rows) + len(gone)
