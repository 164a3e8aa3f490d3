"""Per-slot attributes of the indexed examples, as numpy columns, and the filter masks built from them.

A slot is an example's position in the FAISS index. Filters become a boolean mask over slots that
FAISS applies *inside* the search (IDSelectorBitmap), so a selective filter still yields k results.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import get_args

import numpy as np

from ..models import IndexRow, SelectFilters, Source, Status

# A value's code is its position in the type, saved with each index version: add values at the end only.
STATUSES: tuple[Status, ...] = get_args(Status)
SOURCES: tuple[Source, ...] = get_args(Source)
_NO_TOPIC = -1
_NO_DIFFICULTY = 0


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value


class SlotTable:
    """Columns aligned with index slots: id, status, source, topic, difficulty, quality, tags, alive."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.status = np.zeros(0, dtype=np.int8)
        self.source = np.zeros(0, dtype=np.int8)
        self.topic = np.zeros(0, dtype=np.int32)
        self.difficulty = np.zeros(0, dtype=np.int8)
        self.quality = np.zeros(0, dtype=np.float32)
        self.predicted_quality = np.zeros(0, dtype=np.float32)
        # Bank revision of each slot's row: a cached copy of the example is current while it matches.
        self.revision = np.zeros(0, dtype=np.int64)
        # A removed example keeps its slot until the next rebuild (a tombstone): FAISS flat indexes
        # renumber on removal, which would invalidate every slot held by in-flight searches.
        self.alive = np.zeros(0, dtype=bool)
        self.topics: list[str] = []
        self.topic_code: dict[str, int] = {}
        self.tag_slots: dict[str, list[int]] = {}
        self.slot_tags: list[tuple[str, ...]] = []

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def live_count(self) -> int:
        return int(self.alive.sum())

    def append(self, rows: Sequence[IndexRow]) -> None:
        start = len(self.ids)
        for offset, row in enumerate(rows):
            self.ids.append(row.id)
            self.slot_of[row.id] = start + offset
            self.slot_tags.append(tuple(row.tags))
            for tag in row.tags:
                self.tag_slots.setdefault(tag, []).append(start + offset)
        self.status = np.concatenate([self.status, np.array([STATUSES.index(r.status) for r in rows], np.int8)])
        self.source = np.concatenate([self.source, np.array([SOURCES.index(r.source) for r in rows], np.int8)])
        self.topic = np.concatenate([self.topic, np.array([self._code(r.topic) for r in rows], np.int32)])
        self.difficulty = np.concatenate(
            [self.difficulty, np.array([r.difficulty or _NO_DIFFICULTY for r in rows], np.int8)]
        )
        self.quality = np.concatenate(
            [self.quality, np.array([np.nan if r.quality is None else r.quality for r in rows], np.float32)]
        )
        self.predicted_quality = np.concatenate(
            [self.predicted_quality, np.array([_or_nan(r.predicted_quality) for r in rows], np.float32)]
        )
        self.revision = np.concatenate([self.revision, np.array([r.revision for r in rows], np.int64)])
        self.alive = np.concatenate([self.alive, np.ones(len(rows), dtype=bool)])

    def set_attributes(self, slot: int, row: IndexRow) -> None:
        """Update one slot's attributes in place (its vector is unchanged)."""
        for tag in set(self.slot_tags[slot]) - set(row.tags):
            self.tag_slots[tag].remove(slot)
        for tag in set(row.tags) - set(self.slot_tags[slot]):
            self.tag_slots.setdefault(tag, []).append(slot)
        self.slot_tags[slot] = tuple(row.tags)
        self.status[slot] = STATUSES.index(row.status)
        self.source[slot] = SOURCES.index(row.source)
        self.topic[slot] = self._code(row.topic)
        self.difficulty[slot] = row.difficulty or _NO_DIFFICULTY
        self.quality[slot] = np.nan if row.quality is None else row.quality
        self.predicted_quality[slot] = _or_nan(row.predicted_quality)
        self.revision[slot] = row.revision

    def kill(self, slots: Iterable[int]) -> None:
        for slot in slots:
            self.alive[slot] = False
            self.slot_of.pop(self.ids[slot], None)

    def _code(self, topic: str | None) -> int:
        if topic is None:
            return _NO_TOPIC
        code = self.topic_code.get(topic)
        if code is None:
            code = self.topic_code[topic] = len(self.topics)
            self.topics.append(topic)
        return code

    def mask(self, filters: SelectFilters, exclude_ids: Sequence[str] = ()) -> np.ndarray | None:
        """Slots that pass the filters, or None when every slot passes (no selector needed)."""
        conditions: list[np.ndarray] = []
        if not self.alive.all():
            conditions.append(self.alive)
        wanted_statuses = {STATUSES.index(s) for s in filters.statuses}
        if len(wanted_statuses) < len(STATUSES):
            conditions.append(np.isin(self.status, list(wanted_statuses)))
        if filters.sources is not None:
            conditions.append(np.isin(self.source, [SOURCES.index(s) for s in filters.sources]))
        if filters.topics is not None:
            codes = [self.topic_code[t] for t in filters.topics if t in self.topic_code]
            conditions.append(np.isin(self.topic, codes))
        if filters.difficulty_min is not None:
            conditions.append(self.difficulty >= filters.difficulty_min)
        if filters.difficulty_max is not None:
            # Unknown difficulty is stored as 0, which would pass a maximum: exclude it explicitly.
            conditions.append((self.difficulty <= filters.difficulty_max) & (self.difficulty != _NO_DIFFICULTY))
        if filters.min_quality is not None:
            with np.errstate(invalid="ignore"):
                conditions.append(self.quality >= filters.min_quality)
        if filters.min_predicted_quality is not None:
            with np.errstate(invalid="ignore"):  # unscored (nan) examples fail the comparison
                conditions.append(self.predicted_quality >= filters.min_predicted_quality)
        if filters.tags is not None:
            tagged = np.zeros(len(self.ids), dtype=bool)
            for tag in filters.tags:
                tagged[self.tag_slots.get(tag, [])] = True
            conditions.append(tagged)
        if exclude_ids:
            excluded = np.ones(len(self.ids), dtype=bool)
            excluded[[self.slot_of[i] for i in exclude_ids if i in self.slot_of]] = False
            conditions.append(excluded)
        if not conditions:
            return None
        mask = conditions[0].copy()
        for condition in conditions[1:]:
            mask &= condition
        return mask

    # -- persistence beside the FAISS file -------------------------------------------------------
    def save(self, path: Path) -> None:
        tag_names = sorted(self.tag_slots)
        tag_counts = np.array([len(self.tag_slots[t]) for t in tag_names], dtype=np.int64)
        tag_members = np.array([s for t in tag_names for s in self.tag_slots[t]], dtype=np.int64)
        with path.open("wb") as handle:
            np.savez(
                handle,
                ids=np.array(self.ids, dtype=object).astype(str),
                status=self.status,
                source=self.source,
                topic=self.topic,
                difficulty=self.difficulty,
                quality=self.quality,
                predicted_quality=self.predicted_quality,
                revision=self.revision,
                alive=self.alive,
                topics=np.array(self.topics, dtype=str),
                tag_names=np.array(tag_names, dtype=str),
                tag_counts=tag_counts,
                tag_members=tag_members,
            )

    @classmethod
    def load(cls, path: Path) -> SlotTable:
        """Read a saved table. A running server loads a new version beside the one it serves, so the Python-level
        work (a million ids into a list and a dict) is done in steps that hand the interpreter to the request
        threads between them (_steps): done in one go it held them long enough to raise /v1/select's p99 while
        a large version was adopted (benchmarks/swap.py; figures in benchmarks/RESULTS.md, Hot swap)."""
        table = cls()
        with np.load(path, allow_pickle=False) as data:
            ids = data["ids"]
            for start, stop in _steps(len(ids)):
                table.ids.extend(ids[start:stop].tolist())
            table.status, table.source = data["status"], data["source"]
            table.topic, table.difficulty = data["topic"], data["difficulty"]
            table.quality, table.alive = data["quality"], data["alive"]
            for column in ("predicted_quality", "revision"):
                if column not in data.files:
                    raise KeyError(f"index predates the {column} column")  # the loader turns this into a rebuild
            table.predicted_quality = data["predicted_quality"]
            table.revision = data["revision"]
            table.topics = [str(t) for t in data["topics"]]
            members = data["tag_members"].tolist()
            offsets = np.concatenate([[0], np.cumsum(data["tag_counts"])]).tolist()
            for n, name in enumerate(data["tag_names"]):
                table.tag_slots[str(name)] = members[offsets[n] : offsets[n + 1]]
        tags_of: dict[int, list[str]] = {}  # only tagged slots; most banks tag few examples or none
        for tag, members in table.tag_slots.items():
            for slot in members:
                tags_of.setdefault(slot, []).append(tag)
        table.slot_tags = [()] * len(table.ids)
        for slot, tags in tags_of.items():
            table.slot_tags[slot] = tuple(tags)
        table.topic_code = {t: n for n, t in enumerate(table.topics)}
        alive = np.flatnonzero(table.alive)
        for start, stop in _steps(len(alive)):
            slots = alive[start:stop].tolist()
            table.slot_of.update(zip(map(table.ids.__getitem__, slots), slots, strict=True))
        return table


_STEP = 5_000  # rows per step of SlotTable.load: short steps, so request threads get the interpreter between them


def _steps(count: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges over count rows; between two, other threads get the interpreter (sleep(0) lets go
    of the GIL, and a thread waiting for it takes it)."""
    for start in range(0, count, _STEP):
        yield start, min(start + _STEP, count)
        time.sleep(0)
