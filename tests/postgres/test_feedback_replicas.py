"""Feedback via any replica (issue 20): two services on one PostgreSQL bank; a selection made through one
is reported through the other at once, before or after the first has written its batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.embedding import SentenceTransformerEmbedder

from ..keyed import bearer, keyed_service
from ..pg import fresh_database
from ..servers import live_server


@pytest.fixture
def replicas(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[tuple[TestClient, TestClient]]:
    with fresh_database() as url, ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            service = keyed_service(tmp_path / name, embedder, database_url=url, rate_limit_per_second=0,
                                    feedback_wait_seconds=3)  # fmt: skip
            stack.callback(service.bank.close)
            clients.append(stack.enter_context(TestClient(create_app(service.settings, service, start="now"))))
        yield clients[0], clients[1]


def test_a_selection_made_on_one_replica_takes_feedback_on_the_other(replicas: tuple[TestClient, TestClient]) -> None:
    a, b = replicas
    for _ in range(5):  # each reported the moment it is answered: A's writer may not have stored it yet
        answer = a.post("/v1/select", json={"prompt": "How many marbles?"}, headers=bearer("reader")).json()
        report = {"selection_id": answer["selection_id"], "outcome": "success"}
        assert b.post("/v1/feedback", json=report, headers=bearer("reader")).status_code == 200
        assert b.post("/v1/feedback", json=report, headers=bearer("curator")).status_code == 404
    bank = b.app.state.feedback.bank  # type: ignore[attr-defined]
    assert bank.feedback_counts() == (5, 5)


def test_reports_of_one_selection_at_once_all_succeed_and_one_is_kept(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Ten reports of one selection at once (a client retrying a slow call, two workers grading one answer):
    the feedback was a delete and an insert, so on PostgreSQL several inserted, and all but the first broke the
    primary key: 500s. Now each report replaces the one before it."""
    callers = 10
    with fresh_database() as url, ExitStack() as stack:
        service = keyed_service(tmp_path, embedder, database_url=url, rate_limit_per_second=0,
                                feedback_wait_seconds=3)  # fmt: skip
        stack.callback(service.bank.close)
        base_url = stack.enter_context(live_server(create_app(service.settings, service, start="now")))
        reader = stack.enter_context(httpx.Client(base_url=base_url, headers=bearer("reader"), timeout=60))
        for _ in range(3):
            selection_id = reader.post("/v1/select", json={"prompt": "How many marbles?"}).json()["selection_id"]
            assert reader.post("/v1/feedback", json={"selection_id": selection_id, "outcome": 0.5}).status_code == 200
            start = threading.Barrier(callers, timeout=60)

            def report(n: int, selection_id: str = selection_id, start: threading.Barrier = start) -> httpx.Response:
                start.wait()
                return reader.post("/v1/feedback", json={"selection_id": selection_id, "outcome": n / 10})

            with ThreadPoolExecutor(callers) as pool:
                answers = list(pool.map(report, range(callers)))
            assert [a.status_code for a in answers] == [200] * callers, [a.text for a in answers if a.is_error]
            [kept] = [o for o in service.bank.iter_outcomes() if o.selection_id == selection_id]
            assert kept.outcome in {n / 10 for n in range(callers)}
