"""Feedback via any replica (issue 20): two services on one PostgreSQL bank; a selection made through one
is reported through the other at once, before or after the first has written its batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.embedding import SentenceTransformerEmbedder

from ..keyed import bearer, keyed_service
from ..pg import fresh_database


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
