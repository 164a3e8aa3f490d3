"""What the change feed relies on, on the real PostgreSQL server: writes in commit order, no lost updates,
NOTIFY on commit only, values that round-trip, and SQL that answers as it does on SQLite."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.bank.feed import ChangeWaiter
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.errors import Conflict, InvalidInput
from fewshot_service.index import IndexStore
from fewshot_service.models import ExampleCreate, ExampleImport
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..banks import build_bank
from ..pg import fresh_database


@pytest.fixture
def bank() -> Iterator[SqlBank]:
    with fresh_database() as url:
        bank = SqlBank(url)
        bank.create_schema()
        yield bank
        bank.close()


def vector(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_values_round_trip(bank: SqlBank) -> None:
    stored_vector = vector(1, 384)
    record = ExampleCreate(
        input="Ünïcode — “quotes”, emoji 🧮 and a tab\there?", output="ok", steps=["one", "two ∑"],
        tags=["a", "b c"], topic="maths", difficulty=3, metadata={"nested": {"list": [1, 2.5, None, True]}, "ß": "x"},
    )  # fmt: skip
    before = datetime.now(UTC)
    [created] = bank.insert([record], stored_vector[None, :], "model", "cara")
    [row] = bank.iter_index_rows("model")
    assert row.embedding.dtype == np.float32 and np.array_equal(row.embedding, stored_vector)
    [example] = list(bank.iter_examples())
    assert example == created
    assert example.metadata == {"nested": {"list": [1, 2.5, None, True]}, "ß": "x"}
    assert example.steps == ["one", "two ∑"]
    assert example.created_at.tzinfo == UTC and before <= example.created_at <= datetime.now(UTC)
    assert example.created_at.microsecond == created.created_at.microsecond


def test_a_batch_insert_records_each_example_and_a_refused_row_stores_none_of_it(bank: SqlBank) -> None:
    records = [ExampleCreate(input=f"What is {n} + {n}?", output=str(2 * n), external_id=f"sum-{n}") for n in range(3)]
    created = bank.insert(records, np.stack([vector(n) for n in range(3)]), "m", "cara")
    revision = bank.revision()
    for record, example in zip(records, created, strict=True):
        [entry] = bank.history(example.id)
        assert (entry.actor, entry.action, entry.revision) == ("cara", "create", revision)
        assert entry.changes["input"] == record.input and entry.changes["external_id"] == record.external_id
    # The last row of the next batch takes an external_id already stored: the batch's first row is not kept.
    clash = [ExampleCreate(input="What is 9 + 9?", external_id="new"), ExampleCreate(input="x", external_id="sum-1")]
    with pytest.raises(Conflict) as refused:
        bank.insert(clash, np.stack([vector(8), vector(9)]), "m", "cara")
    assert refused.value.field == "external_id"
    assert {e.external_id for e in bank.iter_examples()} == {"sum-0", "sum-1", "sum-2"}
    assert bank.revision() == revision
    assert bank.insert([], np.zeros((0, 8), np.float32), "m", "cara") == []


def test_write_transactions_run_one_at_a_time_in_revision_order(bank: SqlBank) -> None:
    [example] = bank.insert([ExampleCreate(input="What is 1 + 1?")], vector(0)[None, :], "m", "a")
    order: list[str] = []
    holding = threading.Event()

    def slow_writer() -> None:
        with bank._transaction() as conn:
            revision = bank._bump_revision(conn)
            order.append(f"slow got {revision}")
            holding.set()
            time.sleep(0.5)
            order.append("slow commits")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    holding.wait(5)
    # A reader sees the revision before the slow writer's until it commits: nothing can be read "ahead".
    assert bank.revision() == 1
    bank.update(example.id, {"output": "2"}, expected_version=None, actor="b")
    order.append(f"fast got {bank.revision()}")
    thread.join()
    assert order == ["slow got 2", "slow commits", "fast got 3"]


def test_concurrent_edits_lose_no_update(bank: SqlBank) -> None:
    [example] = bank.insert([ExampleCreate(input="What is 6 x 7?")], vector(0)[None, :], "m", "a")
    accepted = [0]
    lock = threading.Lock()

    def editor(n: int) -> None:
        rng = random.Random(n)
        for step in range(15):
            seen = bank.get(example.id).version
            try:
                bank.update(example.id, {"output": f"{n}-{step}"}, expected_version=seen, actor=f"e{n}")
            except Conflict:
                continue  # someone else edited since it was read: the 409 a curator would get
            with lock:
                accepted[0] += 1
            time.sleep(rng.random() / 100)

    threads = [threading.Thread(target=editor, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = bank.get(example.id)
    assert accepted[0] > 0 and final.version == 1 + accepted[0]  # every accepted edit counted exactly once
    assert len([h for h in bank.history(example.id) if h.action == "update"]) == accepted[0]


def test_a_follower_reading_the_feed_during_concurrent_writes_misses_nothing(bank: SqlBank) -> None:
    done = threading.Event()
    written: list[str] = []
    seen: set[str] = set()

    def writer(n: int) -> None:
        for step in range(20):
            [made] = bank.insert([ExampleCreate(input=f"Writer {n} step {step}?")], vector(n * 100 + step)[None, :],
                                 "m", f"w{n}")  # fmt: skip
            written.append(made.id)

    def follower() -> None:
        applied = 0
        while True:
            finished = done.is_set()
            target = bank.revision()  # first the revision, then the changes (as service.catch_up does)
            rows, gone = bank.changes_since(applied, "m")
            seen.update(row.id for row in rows)
            assert not gone
            applied = target
            if finished:
                return

    reader = threading.Thread(target=follower)
    reader.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert len(written) == 80 and seen == set(written)


def test_listeners_are_notified_at_commit_and_not_on_rollback(bank: SqlBank) -> None:
    stop = threading.Event()
    waiter = ChangeWaiter(bank.engine, stop)
    try:
        assert waiter.wait(0.2) is False  # connects and LISTENs; nothing happened yet
        bank.upsert([ExampleImport(external_id="x", input="What is 9 - 4?")])
        started = time.monotonic()
        assert waiter.wait(5) is True and time.monotonic() - started < 1
        with pytest.raises(Conflict):  # bumps the revision, then fails: rolled back, so no notification
            bank.insert([ExampleCreate(input="Another?", external_id="x")], vector(1)[None, :], "m", "a")
        assert waiter.wait(0.5) is False
    finally:
        waiter.close()


def stats_of(url: str | None, root: Path, embedder: SentenceTransformerEmbedder) -> dict[str, Any]:
    settings = Settings(
        data_dir=root / "data", index_dir=root / "indexes", seed_on_empty=False, database_url=url, coverage_target=2,
        near_duplicate_threshold=0.9,
    )  # fmt: skip
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    try:
        with TestClient(create_app(settings, service, start="now")) as client:
            ids = build_bank(client)
            first = next(iter(ids.values()))
            for annotator, verdict in (("ann", "approve"), ("bob", "reject")):
                label = {"annotator": annotator, "verdict": verdict, "score": 4}
                assert client.post(f"/v1/examples/{first}/labels", json=label).status_code == 201
            stats = client.get("/v1/stats").json()
            agreement = client.get("/v1/stats/agreement").json()
            queue = client.get("/v1/review/next", params={"annotator": "cy"}).json()
            listed = client.get("/v1/examples", params={"topic": "algebra", "q": "O", "difficulty_max": 1}).json()
    finally:
        bank.close()
    for cluster in stats["near_duplicates"]["largest"]:
        cluster["members"] = sorted(m["input"] for m in cluster["members"])
    stats.pop("bank_revision", None)
    stats["utility"].pop("refreshed_at", None)  # when each server last estimated utility
    # The queue's pick among items created in one batch (same time) follows their random ids: compare why.
    return {
        "stats": stats,
        "agreement": agreement,
        "next": queue["reason"],
        "listed": sorted(e["input"] for e in listed["examples"]),
    }


def test_stats_agreement_and_queues_answer_the_same_on_both_databases(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    on_sqlite = stats_of(None, tmp_path / "sqlite", embedder)
    with fresh_database() as url:
        on_postgres = stats_of(url, tmp_path / "postgres", embedder)
    assert on_postgres == on_sqlite
    assert on_sqlite["stats"]["total"] > 0 and on_sqlite["stats"]["label_throughput"] and on_sqlite["listed"]


def test_values_postgresql_cannot_hold_are_the_callers_error_not_a_crash(bank: SqlBank) -> None:
    with pytest.raises(InvalidInput, match="NUL"):  # a 422, where SQLite would have stored it
        bank.insert([ExampleCreate(input="What is 2\x00 + 2?")], vector(0)[None, :], "m", "a")
    # The models refuse such a version (MAX_VERSION); the bank must hold its ground for any caller that skips them.
    with pytest.raises(InvalidInput, match="out of range"):
        bank.upsert([ExampleImport.model_construct(input="What is 2 + 2?", version=2**40)])
    assert bank.count() == 0 and bank.revision() == 0  # nothing half-written


def test_an_integer_sqlite_cannot_hold_is_the_callers_error_not_a_crash(tmp_path: Path) -> None:
    bank = SqlBank(f"sqlite:///{tmp_path / 'bank.db'}")
    try:
        bank.create_schema()
        with pytest.raises(InvalidInput, match="too large"):
            bank.upsert([ExampleImport.model_construct(input="What is 2 + 2?", version=2**70)])
        assert bank.count() == 0 and bank.revision() == 0
    finally:
        bank.close()


def test_integrity_errors_name_what_clashed(bank: SqlBank) -> None:
    """PostgreSQL tells constraints apart differently from SQLite; the answer must still name the right field."""
    one, other = bank.insert(
        [ExampleCreate(input="What is 2 + 2?", external_id="a"), ExampleCreate(input="Name a prime.", external_id="b")],
        np.stack([vector(1), vector(2)]), "m", "t",
    )  # fmt: skip
    with pytest.raises(Conflict) as clash:
        bank.update(other.id, {"external_id": "a"}, expected_version=None, actor="t")
    assert clash.value.field == "external_id" and "'a'" in clash.value.message
    with pytest.raises(InvalidInput) as refused:
        bank.update(one.id, {"output": None}, expected_version=None, actor="t")
    assert refused.value.field == "output" and "external_id" not in refused.value.message
    assert bank.get(one.id) == one and bank.get(other.id) == other
