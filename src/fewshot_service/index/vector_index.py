"""The FAISS index over example embeddings, with metadata filters applied inside the search."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexStoreError
from ..models import IndexRow, SelectFilters
from .locking import ReadWriteLock
from .slots import SlotTable

INDEX_FILE = "index.faiss"
SLOTS_FILE = "slots.npz"


@dataclass(frozen=True)
class Hits:
    """Search results, best first: slots in the index and their cosine similarity to the query."""

    slots: np.ndarray
    scores: np.ndarray


class VectorIndex:
    """Exact inner-product search over L2-normalised vectors; slot n is the n-th example added."""

    kind = "flat"

    def __init__(self, dim: int, faiss_index: faiss.Index | None = None, slots: SlotTable | None = None) -> None:
        self.dim = dim
        self._index = faiss_index if faiss_index is not None else faiss.IndexFlatIP(dim)
        self.slots = slots if slots is not None else SlotTable()
        if self._index.ntotal != len(self.slots):
            raise IndexStoreError(f"index holds {self._index.ntotal} vectors but {len(self.slots)} slots")
        # FAISS reallocates its vector storage when it grows: a search running during an add could read
        # freed memory, so in-place updates exclude searches (and slots never move, so results stay valid).
        self._lock = ReadWriteLock()

    @classmethod
    def build(cls, dim: int, rows: Iterable[IndexRow], batch_size: int = 10_000) -> VectorIndex:
        """An index over rows, added in batches so a large bank is never held twice in memory."""
        index = cls(dim)
        batch: list[IndexRow] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                index.add(batch)
                batch = []
        index.add(batch)
        return index

    @property
    def size(self) -> int:
        """Live (searchable) examples."""
        return self.slots.live_count

    def add(self, rows: Sequence[IndexRow]) -> None:
        """Append rows; their embeddings must be normalised and of this index's dimension."""
        if not rows:
            return
        vectors = np.stack([row.embedding for row in rows]).astype(np.float32, copy=False)
        if vectors.shape[1] != self.dim:
            raise IndexStoreError(f"embedding dimension {vectors.shape[1]} does not match the index ({self.dim})")
        with self._lock.writing():
            self._index.add(vectors)
            self.slots.append(rows)

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        """Make the index reflect these rows: attributes updated in place, a changed vector re-added."""
        appended: list[IndexRow] = []
        with self._lock.writing():
            for row in rows:
                slot = self.slots.slot_of.get(row.id)
                if slot is not None and np.array_equal(self._index.reconstruct(slot), row.embedding):
                    self.slots.set_attributes(slot, row)
                    continue
                if slot is not None:
                    self.slots.kill([slot])
                appended.append(row)
        self.add(appended)

    def remove(self, ids: Iterable[str]) -> None:
        """Tombstone these examples: never returned again, space reclaimed at the next rebuild."""
        with self._lock.writing():
            self.slots.kill(self.slots.slot_of[i] for i in ids if i in self.slots.slot_of)

    def search(self, query: np.ndarray, n: int, filters: SelectFilters, exclude_ids: Sequence[str] = ()) -> Hits:
        """The n nearest slots to query among those passing the filters, best first."""
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with self._lock.reading():
            mask = self.slots.mask(filters, exclude_ids)
            matching = len(self.slots) if mask is None else int(mask.sum())
            n = min(n, matching)
            if n <= 0:
                return Hits(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
            if mask is None:
                scores, slots = self._index.search(query, n)
            else:
                # The bitmap must outlive the search: FAISS only holds a raw pointer to it.
                bitmap = np.packbits(mask, bitorder="little")
                selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
                scores, slots = self._index.search(query, n, params=params)
        found = slots[0] >= 0
        return Hits(slots[0][found], scores[0][found])

    def vectors(self, slots: np.ndarray) -> np.ndarray:
        """The stored vectors of these slots (a copy of just those rows)."""
        if len(slots) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock.reading():
            return np.asarray(self._index.reconstruct_batch(np.asarray(slots, dtype=np.int64)))

    def sample(
        self, n: int, filters: SelectFilters, exclude_ids: Sequence[str], rng: np.random.Generator
    ) -> np.ndarray:
        """Up to n random slots among those passing the filters."""
        with self._lock.reading():
            mask = self.slots.mask(filters, exclude_ids)
            eligible = np.arange(len(self.slots)) if mask is None else np.flatnonzero(mask)
        return rng.choice(eligible, size=min(n, len(eligible)), replace=False).astype(np.int64)

    def attributes(self, slots: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        """(topics, difficulties with nan for unknown) of these slots."""
        table = self.slots
        codes = table.topic[slots]
        topics = [table.topics[c] if c >= 0 else None for c in codes]
        levels = table.difficulty[slots].astype(np.float64)
        levels[levels == 0] = np.nan
        return topics, levels

    def ids(self, slots: Iterable[int]) -> list[str]:
        return [self.slots.ids[int(s)] for s in slots]

    def save(self, directory: Path) -> list[Path]:
        """Write the index files into directory; returns the files written."""
        with self._lock.reading():
            faiss.write_index(self._index, str(directory / INDEX_FILE))
            self.slots.save(directory / SLOTS_FILE)
        return [directory / INDEX_FILE, directory / SLOTS_FILE]

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        try:
            faiss_index = faiss.read_index(str(directory / INDEX_FILE))
            slots = SlotTable.load(directory / SLOTS_FILE)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            raise IndexStoreError(f"cannot read the index in {directory}: {exc}") from exc
        return cls(faiss_index.d, faiss_index, slots)
