"""What the service needs from an example bank; SqlBank is the implementation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..models import Example, ExampleImport, IndexRow, Status


@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ids: list[str] = field(default_factory=list)  # the examples created, updated or unchanged
    # (position of the record in the batch, why): records not stored, and what was done differently than asked
    failed: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)

    def __iadd__(self, other: ImportCounts) -> ImportCounts:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.ids += other.ids
        self.failed += other.failed
        self.notes += other.notes
        return self


class ExampleBank(Protocol):
    def create_schema(self) -> None:
        """Create the tables when they do not exist."""

    def revision(self) -> int:
        """The bank revision: it increases on every write."""

    def count(self) -> int:
        """How many examples the bank holds."""

    def get_many(self, ids: Sequence[str]) -> dict[str, Example]:
        """The examples with these ids (missing ids are absent from the result)."""

    def upsert(self, records: Sequence[ExampleImport], actor: str = "import", *, strict: bool = False) -> ImportCounts:
        """Insert or update records as exported in one transaction, idempotent on external_id (then id)."""

    def import_curated(
        self,
        items: Sequence[tuple[int, ExampleImport, np.ndarray | None]],
        model_id: str | None,
        actor: str,
        *,
        strict: bool = False,
        status: Status | None = None,
    ) -> ImportCounts:
        """Import (position, record, embedding) items under the curator rules."""

    def iter_examples(self, batch_size: int = 1000) -> Iterator[Example]:
        """Every example, in a stable order."""

    def iter_unembedded(self, model_id: str, batch_size: int) -> Iterator[list[tuple[str, str]]]:
        """Batches of (id, input) whose stored embedding is missing or from another model."""

    def count_unembedded(self, model_id: str) -> int:
        """How many examples lack an embedding from this model."""

    def store_embeddings(self, rows: Sequence[tuple[str, str]], vectors: np.ndarray, model_id: str) -> None:
        """Store the embeddings of (id, input) rows under model_id, unless the input changed meanwhile."""

    def iter_index_rows(self, model_id: str, batch_size: int = 5000) -> Iterator[IndexRow]:
        """Every example embedded with model_id, as the index needs it."""

    def close(self) -> None:
        """Release connections."""
