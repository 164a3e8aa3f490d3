"""The embedded (SQLite) bank when another process holds its write lock: writes answer 503 within the
statement timeout, reads are served, and writing works again once the lock is released. And what lets
selects go without the bank: every example the index serves is in memory."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.bank.guard import BankHealth, BankTimeouts
from fewshot_service.curation.service import Curator
from fewshot_service.embedding import Embedder
from fewshot_service.index import IndexStore
from fewshot_service.models import ExampleCreate
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..conftest import ServiceFactory
from ..helpers import seed_rows, write_jsonl

STATEMENT_S = 1.0
# Within the configured statement timeout, not SQLite's 30 s default nor forever; the margin covers embedding
# the input and a machine busy with the other test worker (3.46 s seen once in a full suite on two cores).
REFUSED_WITHIN_S = STATEMENT_S + 4.0


def test_a_locked_sqlite_bank_refuses_writes_in_time_and_keeps_serving_reads(
    tmp_path: Path, embedder: Embedder
) -> None:
    seeds = write_jsonl(tmp_path / "seeds" / "some.jsonl", seed_rows()[::10])
    settings = Settings(
        data_dir=tmp_path / "data",
        index_dir=tmp_path / "indexes",
        seed_dir=seeds.parent,
        bank_statement_timeout_seconds=STATEMENT_S,
    )
    bank = SqlBank(settings.resolved_database_url(), BankTimeouts(1.0, STATEMENT_S))
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    body = {"input": "How many seconds are in 3 minutes?", "output": "180"}
    try:
        with TestClient(create_app(settings, service, start="now")) as client:
            holder = sqlite3.connect(tmp_path / "data" / "bank.sqlite3", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
            try:
                started = time.monotonic()
                refused = client.post("/v1/examples", json=body)
                took = time.monotonic() - started
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "bank_unavailable"
                assert refused.headers["retry-after"]
                assert took < REFUSED_WITHIN_S
                assert client.post("/v1/select", json={"prompt": "seconds in a minute?", "k": 2}).status_code == 200
                assert client.get("/v1/examples", params={"limit": 5}).status_code == 200
                assert client.get("/readyz").json()["bank"] == "available"  # reads work: it is only locked
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            stored = client.post("/v1/examples", json=body)
            assert stored.status_code == 201, stored.text
            listed = client.get("/v1/examples", params={"q": "seconds are in 3 minutes"}).json()
            assert [e["id"] for e in listed["examples"]] == [stored.json()["examples"][0]["id"]]  # one, not two
    finally:
        bank.close()


def test_every_example_the_index_serves_is_in_memory_after_start_and_after_a_write(
    make_service: ServiceFactory,
) -> None:
    service = make_service()
    service.start()

    def uncached() -> list[str]:
        index = service.served().index
        slots = np.flatnonzero(index.slots.alive)
        _, missing = service.examples.get(index.ids(slots), index.revisions(slots).tolist())
        return missing

    assert service.served().index.size > 0 and uncached() == []
    created = Curator(service).add([ExampleCreate(input="How many hours are in 3 days?", output="72")], "keep", "t")
    assert uncached() == []  # the new example is selectable without a bank read
    assert created.examples[0].id in service.served().index.live_ids()


def test_a_read_only_sqlite_bank_refuses_writes_with_503_and_keeps_serving_reads(
    tmp_path: Path, embedder: Embedder
) -> None:
    """SQLite's own read-only refusal (SQLITE_READONLY, as for a file the process may not write): the tests
    run as root, whom file modes do not stop, so the database is put in query-only mode on every connection."""
    from sqlalchemy import event

    seeds = write_jsonl(tmp_path / "seeds" / "some.jsonl", seed_rows()[::10])
    settings = Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "indexes", seed_dir=seeds.parent)
    bank = SqlBank(settings.resolved_database_url(), BankTimeouts(1.0, STATEMENT_S))
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    try:
        with TestClient(create_app(settings, service, start="now")) as client:
            before = client.get("/v1/examples", params={"limit": 500}).json()["examples"]
            for engine in {bank.engine, bank.writer}:
                event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA query_only = ON"))
                engine.dispose()  # pooled connections are replaced by read-only ones
            refused = client.post("/v1/examples", json={"input": "How many legs has a spider?", "output": "8"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "bank_unavailable"
            assert client.post("/v1/select", json={"prompt": "seconds in a minute?", "k": 2}).status_code == 200
            assert (
                client.get("/v1/examples", params={"limit": 500}).json()["examples"] == before
            )  # nothing half-written
    finally:
        bank.close()


def test_the_log_says_the_bank_is_back_only_after_it_was_down(caplog: pytest.LogCaptureFixture) -> None:
    # An operator reading the log of a normal start must not meet a recovery that never happened.
    health = BankHealth()
    with caplog.at_level(logging.INFO, logger="fewshot_service.bank.guard"):
        health.mark(True)
        health.mark(True)
        assert not caplog.messages
        health.mark(False, "connection refused")
        health.mark(True)
    assert caplog.messages == ["the bank is unavailable: connection refused", "the bank is available again"]
