"""The FAISS index over example embeddings, with metadata filters applied inside the search.

Filters become a bitmap over slots that FAISS applies while it searches. An exact (flat) index then returns
exactly the best matches. An approximate one (IVF, HNSW) could miss matches a selective filter leaves far
apart, so a small filtered subset (at most EXACT_SHARE of the slots) is scanned exactly, in place, and an
approximate search that finds fewer than asked while enough slots match is redone exactly: never fewer
than n results when n match. Deletes are tombstones (the alive column) in every kind, until the next
rebuild: FAISS cannot remove from HNSW, and removing from the others would renumber slots.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from ..errors import IndexStoreError
from ..models import IndexRow, SelectFilters
from .kinds import IndexOptions, create, describe, training_size
from .locking import ReadWriteLock
from .slots import SlotTable

INDEX_FILE = "index.faiss"
SLOTS_FILE = "slots.npz"
# A filter keeping at most this share of the slots is searched exactly over just those slots (no copy: FAISS
# skips the others). The exact scan still walks every slot's id, so its cost grows with the bank; at a
# million vectors it matches the probe below up to about this share and loses above it (benchmarks/RESULTS.md,
# Scale, "filter keeps"): up to it exactness costs little; above, the probe.
# (Gathering the subset's vectors instead was slower still: an IVF reads them back one at a time.)
EXACT_SHARE = 0.02
_CACHED_MASKS = 16


@contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """Run the FAISS calls inside on the calling thread alone. A one-query search gains nothing from OpenMP
    (FAISS splits work by query), but each call still wakes the OpenMP team, whose idle threads then spin and
    take CPU from concurrent requests. OpenMP keeps the
    setting per thread, and it is put back after, so a rebuild, which trains and adds in parallel, keeps
    every core whichever thread runs it."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


@dataclass(frozen=True)
class _Selection:
    """The slots a filter keeps, as FAISS reads them; the selector holds a raw pointer into bitmap."""

    mask: np.ndarray
    count: int
    bitmap: np.ndarray
    selector: faiss.IDSelectorBitmap


@dataclass(frozen=True)
class Pool:
    """Candidates for a selection as one read saw them: slot, similarity to the query, vector, attributes, id
    and the bank revision it was indexed at, position by position."""

    slots: np.ndarray
    relevance: np.ndarray
    vectors: np.ndarray
    topics: list[str | None]
    difficulties: np.ndarray  # float, nan where unknown
    ids: list[str]
    revisions: np.ndarray


@dataclass(frozen=True)
class Hits:
    """Search results, best first: slots in the index and their cosine similarity to the query."""

    slots: np.ndarray
    scores: np.ndarray


class VectorIndex:
    """Inner-product search over L2-normalised vectors (exact, IVF or HNSW); slot n is the n-th example added."""

    exact_share = EXACT_SHARE  # filtered subsets at most this share of the slots are scanned exactly

    def __init__(self, dim: int, faiss_index: faiss.Index | None = None, slots: SlotTable | None = None) -> None:
        self.dim = dim
        # Any: FAISS's stubs do not know the subclasses' attributes (nprobe, hnsw, storage).
        self._index: Any = cast(Any, faiss_index if faiss_index is not None else faiss.IndexFlatIP(dim))
        self.slots = slots if slots is not None else SlotTable()
        if self._index.ntotal != len(self.slots):
            raise IndexStoreError(f"index holds {self._index.ntotal} vectors but {len(self.slots)} slots")
        # FAISS reallocates its vector storage when it grows: a search running during an add could read
        # freed memory, so in-place updates exclude searches (and slots never move, so results stay valid).
        self._lock = ReadWriteLock()
        self.kind, self.storage = describe(self._index)
        # HNSW keeps its vectors in a flat "storage" index, which an exact filtered scan searches directly.
        self._flat = faiss.downcast_index(self._index.storage) if self.kind == "hnsw" else self._index
        # Filter masks of recent requests without exclusions, valid while the slot table is unchanged:
        # most requests share a few filters, and a mask over a million slots costs milliseconds to build.
        self._generation = 0
        self._masks: OrderedDict[str, tuple[int, _Selection | None]] = OrderedDict()
        self._masks_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        dim: int,
        rows: Iterable[IndexRow],
        batch_size: int = 10_000,
        options: IndexOptions | None = None,
        expected: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> VectorIndex:
        """An index over rows, added in batches so a large bank is never held twice in memory.

        expected, the number of rows (or about it; a sequence counts itself), picks the kind of index.
        Kinds that need training (IVF, 8-bit storage) are trained on the first rows: a uniform sample
        when rows come in id order, as ids are random. on_progress hears how many rows each batch added.
        """
        options = options or IndexOptions()
        if expected is None:
            expected = len(rows) if isinstance(rows, Sized) else 0
        stream = iter(rows)
        wanted = training_size(options, expected)
        sample = list(islice(stream, wanted))
        # A short sample means the rows ran out: there are exactly that many.
        count = max(expected, len(sample)) if len(sample) == wanted else len(sample)
        faiss_index = create(dim, options, count)
        if not faiss_index.is_trained:
            if sample:
                training = np.stack([row.embedding for row in sample]).astype(np.float32, copy=False)
                if training.shape[1] != dim:
                    raise IndexStoreError(f"embedding dimension {training.shape[1]} does not match the index ({dim})")
                faiss_index.train(training)
                del training
            else:
                faiss_index = faiss.IndexFlatIP(dim)  # an empty bank: nothing to train on, nothing to search
        index = cls(dim, faiss_index)

        def add(rows: list[IndexRow]) -> None:
            index.add(rows)
            if on_progress is not None and rows:
                on_progress(len(rows))

        for start in range(0, len(sample), batch_size):
            add(sample[start : start + batch_size])
        sample = []
        batch: list[IndexRow] = []
        for row in stream:
            batch.append(row)
            if len(batch) >= batch_size:
                add(batch)
                batch = []
        add(batch)
        return index

    def params(self) -> dict[str, int]:
        """The kind's parameters, for the manifest."""
        if self.kind == "ivf":
            return {"nlist": int(self._index.nlist), "nprobe": int(self._index.nprobe)}
        if self.kind == "hnsw":
            hnsw = self._index.hnsw
            return {"M": int(hnsw.nb_neighbors(1)), "efConstruction": hnsw.efConstruction, "efSearch": hnsw.efSearch}
        return {}

    @property
    def size(self) -> int:
        """Live (searchable) examples."""
        return self.slots.live_count

    def add(self, rows: Sequence[IndexRow]) -> None:
        """Append rows; their embeddings must be normalised and of this index's dimension."""
        if not rows:
            return
        vectors = self._stack(rows)
        with self._lock.writing():
            self._append(rows, vectors)

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        """Make the index reflect these rows: attributes updated in place, a changed vector swapped for the new
        one. One write lock covers the retire and the re-add, so a search sees one version or the other."""
        latest = list({row.id: row for row in rows}.values())  # the last row of an id wins, one slot per id
        if not latest:
            return
        vectors = self._stack(latest)
        with self._lock.writing():
            appended: list[int] = []
            for n, row in enumerate(latest):
                slot = self.slots.slot_of.get(row.id)
                if slot is not None and self._holds(slot, row.embedding):
                    self.slots.set_attributes(slot, row)
                    continue
                if slot is not None:
                    self.slots.kill([slot])
                appended.append(n)
            self._append([latest[n] for n in appended], vectors[appended])
            self._generation += 1

    def _stack(self, rows: Sequence[IndexRow]) -> np.ndarray:
        vectors = np.stack([row.embedding for row in rows]).astype(np.float32, copy=False)
        if vectors.shape[1] != self.dim:
            raise IndexStoreError(f"embedding dimension {vectors.shape[1]} does not match the index ({self.dim})")
        return vectors

    def _append(self, rows: Sequence[IndexRow], vectors: np.ndarray) -> None:
        """Add rows at the end; the caller holds the write lock."""
        if not rows:
            return
        self._index.add(vectors)
        self.slots.append(rows)
        self._generation += 1

    def _holds(self, slot: int, vector: np.ndarray) -> bool:
        """Whether slot stores vector (as this index's storage would round it)."""
        stored = self._index.reconstruct(slot)
        if self.storage == "float32":
            return bool(np.array_equal(stored, vector))
        vector = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        rounded = self._flat.sa_decode(self._flat.sa_encode(vector))[0]
        return bool(np.allclose(stored, rounded, rtol=0, atol=1e-6))

    def remove(self, ids: Iterable[str]) -> None:
        """Tombstone these examples: never returned again, space reclaimed at the next rebuild."""
        with self._lock.writing():
            self.slots.kill(self.slots.slot_of[i] for i in ids if i in self.slots.slot_of)
            self._generation += 1

    def search(self, query: np.ndarray, n: int, filters: SelectFilters, exclude_ids: Sequence[str] = ()) -> Hits:
        """The n nearest slots to query among those passing the filters, best first."""
        with self._lock.reading(), _one_openmp_thread():
            return self._search(query, n, filters, exclude_ids)

    def pool(
        self,
        query: np.ndarray,
        n: int,
        filters: SelectFilters,
        exclude_ids: Sequence[str] = (),
        *,
        below: float = math.inf,
        headroom: int = 0,
        rng: np.random.Generator | None = None,
    ) -> Pool:
        """Up to n candidates passing the filters whose similarity to query is below `below`, with everything a
        selection reads about them, under one read lock (an edit between two reads could mix two versions).

        Without rng: the nearest n, best first; the search asks for n + headroom, room for those at or above
        `below`, and widens until it has n or has seen every slot that passes the filters.
        With rng: n slots drawn uniformly from those passing the filters, then those at or above `below` dropped.
        """
        with self._lock.reading(), _one_openmp_thread():
            if rng is None:
                slots, relevance = self._nearest_below(query, n, filters, exclude_ids, below, n + headroom)
                vectors = self._vectors(slots)
            else:
                slots = self._sample(n, filters, exclude_ids, rng)
                vectors = self._vectors(slots)
                relevance = vectors @ query
                keep = relevance < below
                slots, vectors, relevance = slots[keep], vectors[keep], relevance[keep]
            topics, difficulties = self._attributes(slots)
            return Pool(
                slots=slots,
                relevance=relevance,
                vectors=vectors,
                topics=topics,
                difficulties=difficulties,
                ids=[self.slots.ids[int(s)] for s in slots],
                revisions=self.slots.revision[slots],
            )

    def _nearest_below(
        self, query: np.ndarray, n: int, filters: SelectFilters, exclude_ids: Sequence[str], below: float, asked: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The nearest n below `below`, asking `asked` first; the caller holds the read lock."""
        while True:
            hits = self._search(query, asked, filters, exclude_ids)
            keep = hits.scores < below
            if int(keep.sum()) >= n or len(hits.slots) < asked:
                return hits.slots[keep][:n], hits.scores[keep][:n]
            asked *= 4

    def _search(self, query: np.ndarray, n: int, filters: SelectFilters, exclude_ids: Sequence[str]) -> Hits:
        """search(); the caller holds the read lock and runs on one OpenMP thread."""
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        selection = self._selection(filters, exclude_ids)
        matching = len(self.slots) if selection is None else selection.count
        n = min(n, matching)
        if n <= 0:
            return Hits(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        # The selection (bitmap and selector) stays referenced until the search returns.
        selector = None if selection is None else selection.selector
        if self.kind == "ivf":
            scores, slots = self._search_ivf(query, n, selector, matching)
        elif self.kind == "hnsw":
            scores, slots = self._search_hnsw(query, n, selector, matching)
        else:
            scores, slots = self._search_exact(query, n, selector)
        found = slots[0] >= 0
        return Hits(slots[0][found], scores[0][found])

    def _search_exact(self, query: np.ndarray, n: int, selector: faiss.IDSelector | None) -> tuple[Any, Any]:
        """Every selected vector compared (FAISS skips the unselected ones without reading them)."""
        params = None if selector is None else faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        return self._flat.search(query, n, params=params)

    def _search_ivf(
        self, query: np.ndarray, n: int, selector: faiss.IDSelector | None, matching: int
    ) -> tuple[Any, Any]:
        nlist, nprobe = self._index.nlist, self._index.nprobe
        if selector is not None:
            # Probe as many lists as it takes to see as many matching vectors as an unfiltered search does;
            # a small subset is scanned whole (every list: exact over the matches).
            scaled = math.ceil(nprobe * len(self.slots) / matching)
            nprobe = nlist if matching <= self.exact_share * len(self.slots) else min(nlist, scaled)
        scores, slots = self._index.search(query, n, params=_ivf_params(selector, nprobe))
        if nprobe < nlist and int((slots[0] >= 0).sum()) < n:
            # The probed lists held fewer than n matches, though n match: probe every list.
            scores, slots = self._index.search(query, n, params=_ivf_params(selector, nlist))
        return scores, slots

    def _search_hnsw(
        self, query: np.ndarray, n: int, selector: faiss.IDSelector | None, matching: int
    ) -> tuple[Any, Any]:
        if selector is None or matching > self.exact_share * len(self.slots):
            params = faiss.SearchParametersHNSW(efSearch=max(self._index.hnsw.efSearch, n))  # type: ignore[attr-defined]
            if selector is not None:
                params.sel = selector
            scores, slots = self._index.search(query, n, params=params)
            if int((slots[0] >= 0).sum()) >= n:
                return scores, slots
        # A small subset, or one the graph walk could not reach n members of: scan it exactly.
        return self._search_exact(query, n, selector)

    def _selection(self, filters: SelectFilters, exclude_ids: Sequence[str]) -> _Selection | None:
        """The slots passing the filters, or None when every slot does; the caller holds the read lock."""
        key = None if exclude_ids else filters.model_dump_json()
        if key is not None:
            with self._masks_lock:
                cached = self._masks.get(key)
                if cached is not None and cached[0] == self._generation:
                    self._masks.move_to_end(key)
                    return cached[1]
        mask = self.slots.mask(filters, exclude_ids)
        selection = None
        if mask is not None:
            count = int(mask.sum())
            if count < len(mask):
                bitmap = np.packbits(mask, bitorder="little")
                selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
                selection = _Selection(mask, count, bitmap, selector)
        if key is not None:
            with self._masks_lock:
                self._masks[key] = (self._generation, selection)
                self._masks.move_to_end(key)
                while len(self._masks) > _CACHED_MASKS:
                    self._masks.popitem(last=False)
        return selection

    def vectors(self, slots: np.ndarray) -> np.ndarray:
        """The stored vectors of these slots (a copy of just those rows)."""
        with self._lock.reading():
            return self._vectors(slots)

    def _vectors(self, slots: np.ndarray) -> np.ndarray:
        if len(slots) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(np.asarray(slots, dtype=np.int64)))

    def sample(
        self, n: int, filters: SelectFilters, exclude_ids: Sequence[str], rng: np.random.Generator
    ) -> np.ndarray:
        """Up to n random slots among those passing the filters."""
        with self._lock.reading():
            return self._sample(n, filters, exclude_ids, rng)

    def _sample(
        self, n: int, filters: SelectFilters, exclude_ids: Sequence[str], rng: np.random.Generator
    ) -> np.ndarray:
        selection = self._selection(filters, exclude_ids)
        eligible = np.arange(len(self.slots)) if selection is None else np.flatnonzero(selection.mask)
        return rng.choice(eligible, size=min(n, len(eligible)), replace=False).astype(np.int64)

    def attributes(self, slots: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        """(topics, difficulties with nan for unknown) of these slots."""
        with self._lock.reading():
            return self._attributes(slots)

    def _attributes(self, slots: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        table = self.slots
        codes = table.topic[slots]
        topics = [table.topics[c] if c >= 0 else None for c in codes]
        levels = table.difficulty[slots].astype(np.float64)
        levels[levels == 0] = np.nan
        return topics, levels

    def ids(self, slots: Iterable[int]) -> list[str]:
        with self._lock.reading():
            return [self.slots.ids[int(s)] for s in slots]

    def revisions(self, slots: np.ndarray) -> np.ndarray:
        """The bank revision each of these slots was indexed at."""
        with self._lock.reading():
            revisions: np.ndarray = self.slots.revision[slots]
            return revisions

    def live_ids(self) -> list[str]:
        """Ids of the live (searchable) examples, in slot order; each appears once in a sound index."""
        with self._lock.reading():
            return [self.slots.ids[int(s)] for s in np.flatnonzero(self.slots.alive)]

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


def _ivf_params(selector: faiss.IDSelector | None, nprobe: int) -> faiss.SearchParametersIVF:
    params = faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]
    if selector is not None:
        params.sel = selector
    return params
