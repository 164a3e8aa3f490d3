"""Selected examples served from memory instead of a bank query on every /v1/select.

The cache is kept filled with every example the served index holds (fill(), after each start, swap,
catch-up and write), up to its capacity, so /v1/select answers from memory while the bank is down. An
index larger than the capacity reads the rest from the bank, and those selects answer 503 during an outage.

Entries are keyed by id and carry the bank revision of the row they were read from. The index records,
for every slot, the revision it was built or updated at; an entry is used only when the two match, so a
cached copy can never be older than what the index itself knows. No invalidation is needed: an edit gives
the row a new revision, the index follows, and the stale entry simply stops matching.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from ..index import VectorIndex
from ..models import Example

FILL_BATCH = 2000


class ExampleSource(Protocol):
    def get_many_with_revisions(self, ids: Sequence[str]) -> dict[str, tuple[int, Example]]:
        """Live examples by id, each with the bank revision of its last change."""
        ...


class ExampleCache:
    """A bounded LRU map id -> (revision, Example), safe to use from several threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, Example]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ids: Sequence[str], revisions: Sequence[int]) -> tuple[dict[str, Example], list[str]]:
        """The cached examples whose revision matches, and the ids that must be read from the bank."""
        found: dict[str, Example] = {}
        missing: list[str] = []
        with self._lock:
            for example_id, revision in zip(ids, revisions, strict=True):
                entry = self._entries.get(example_id)
                if entry is not None and entry[0] == revision:
                    self._entries.move_to_end(example_id)
                    found[example_id] = entry[1]
                else:
                    missing.append(example_id)
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def put(self, entries: Iterable[tuple[int, Example]]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            for revision, example in entries:
                current = self._entries.get(example.id)
                if current is not None and current[0] > revision:
                    continue  # a reader that raced an edit must not put the older copy back
                self._entries[example.id] = (revision, example)
                self._entries.move_to_end(example.id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def fill(self, index: VectorIndex, bank: ExampleSource, ids: Iterable[str] | None = None) -> int:
        """Read from the bank the examples the index serves (all, or these ids) that are not cached at the
        index's revision, up to capacity; how many were read."""
        if self.capacity <= 0:
            return 0
        slot_of = index.slots.slot_of
        if ids is None:
            slots = np.flatnonzero(index.slots.alive)
        else:
            slots = np.array([slot_of[i] for i in ids if i in slot_of], dtype=np.int64)
            slots = slots[index.slots.alive[slots]]
        wanted = index.ids(slots)
        revisions = index.revisions(slots).tolist()
        with self._lock:
            stale = [i for i, r in zip(wanted, revisions, strict=True) if self._entries.get(i, (None,))[0] != r]
        stale = stale[: self.capacity]  # an index larger than the cache: the rest is read when selected
        for start in range(0, len(stale), FILL_BATCH):
            self.put(bank.get_many_with_revisions(stale[start : start + FILL_BATCH]).values())
        return len(stale)
