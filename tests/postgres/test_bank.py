"""The SQL bank on SQLite and PostgreSQL: revisions, idempotent upserts, stored embeddings keyed by model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from fewshot_service.bank import SqlBank
from fewshot_service.models import ExampleImport

from ..pg import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def new_bank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SqlBank]]:
    """Opens empty banks of one kind: SQLite files, or fresh databases on the real PostgreSQL server."""
    opened: list[SqlBank] = []
    with ExitStack() as databases:

        def open_bank() -> SqlBank:
            if request.param == "sqlite":
                url = f"sqlite:///{tmp_path / f'bank{len(opened)}.sqlite3'}"
            else:
                url = databases.enter_context(fresh_database())
            opened.append(SqlBank(url))
            opened[-1].create_schema()
            return opened[-1]

        yield open_bank
        for bank in opened:
            bank.close()


@pytest.fixture
def bank(new_bank: Callable[[], SqlBank]) -> SqlBank:
    return new_bank()


def record(external_id: str, text: str, **fields: object) -> ExampleImport:
    return ExampleImport.model_validate({"external_id": external_id, "input": text, "output": "4", **fields})


def test_revision_increases_on_every_write(bank: SqlBank) -> None:
    seen = [bank.revision()]
    bank.upsert([record("a", "2 + 2?")])
    seen.append(bank.revision())
    bank.upsert([record("a", "2 + 2?", output="four")])
    seen.append(bank.revision())
    [(example_id, text)] = next(bank.iter_unembedded("m", 10))
    bank.store_embeddings([(example_id, text)], np.ones((1, 3), np.float32), "m")
    seen.append(bank.revision())
    assert seen == sorted(set(seen)) and len(seen) == 4


def test_upsert_is_idempotent_on_external_id(bank: SqlBank) -> None:
    first = bank.upsert([record("a", "What is 2 + 2?"), record("b", "What is 3 + 3?", output="6")])
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    revision = bank.revision()
    again = bank.upsert([record("a", "What is 2 + 2?"), record("b", "What is 3 + 3?", output="6")])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert bank.revision() == revision  # nothing changed, so nothing makes a served index look stale
    changed = bank.upsert([record("b", "What is 3 + 3?", output="six")])
    assert changed.updated == 1
    stored = {e.external_id: e for e in bank.iter_examples()}
    assert bank.count() == 2 and stored["b"].output == "six" and stored["b"].version == 2


def test_embeddings_are_stored_per_model_and_reset_only_when_input_changes(bank: SqlBank) -> None:
    bank.upsert([record("a", "What is 2 + 2?"), record("b", "What is 3 + 3?")])
    batch = next(bank.iter_unembedded("model-1", 10))
    bank.store_embeddings(batch, np.eye(2, 4, dtype=np.float32), "model-1")
    assert bank.count_unembedded("model-1") == 0
    assert bank.count_unembedded("model-2") == 2  # another model re-embeds everything
    rows = {r.id: r for r in bank.iter_index_rows("model-1")}
    assert all(r.embedding.dtype == np.float32 and r.embedding.shape == (4,) for r in rows.values())

    bank.upsert([record("a", "What is 2 + 2?", output="four")])  # output only: embedding kept
    assert bank.count_unembedded("model-1") == 0
    bank.upsert([record("a", "What is 2 + 3?")])  # input changed: embedding dropped
    assert [text for _, text in next(bank.iter_unembedded("model-1", 10))] == ["What is 2 + 3?"]


def test_embedding_of_an_input_edited_meanwhile_is_not_stored(bank: SqlBank) -> None:
    bank.upsert([record("a", "old text")])
    batch = next(bank.iter_unembedded("m", 10))
    bank.upsert([record("a", "new text")])  # edited while the old text was being embedded
    bank.store_embeddings(batch, np.ones((1, 3), np.float32), "m")
    assert bank.count_unembedded("m") == 1


def test_import_keeps_ids_and_service_fields_of_an_export(bank: SqlBank, new_bank: Callable[[], SqlBank]) -> None:
    bank.upsert([record("a", "What is 2 + 2?", status="rejected", quality=2.5)])
    [exported] = list(bank.iter_examples())
    other = new_bank()
    other.upsert([ExampleImport.model_validate(exported.model_dump())])
    [copied] = list(other.iter_examples())
    assert copied == exported
