"""Closing the loop (issue 20) through the API: selections recorded with an id, feedback by the key that
selected, retention, utility on the example and in stats, the review queue and a curator's fix."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank.base import now
from fewshot_service.bank.feedback_sql import SelectionRecord
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.feedback.recorder import SelectionRecorder, issued_at, new_selection_id
from fewshot_service.feedback.service import FeedbackService
from fewshot_service.feedback.types import FeedbackCreate
from fewshot_service.models import SelectResponse
from fewshot_service.selection.utility import UtilityBoard

from ..keyed import bearer, keyed_service

OLD_ID = "old-selection-" + "0" * 19  # shaped like an issued id (32 url-safe characters)
FAST = {"rate_limit_per_second": 0, "feedback_wait_seconds": 0.2, "utility_refresh_seconds": 3600}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    service = keyed_service(tmp_path_factory.mktemp("feedback"), embedder, **FAST)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        yield client


def _feedback(client: TestClient) -> FeedbackService:
    service: FeedbackService = client.app.state.feedback  # type: ignore[attr-defined]
    return service


def _select(client: TestClient, role: str = "reader", **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/select", json={"prompt": "How many marbles are in the box?", **body}, headers=bearer(role)
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _report(client: TestClient, selection_id: str, outcome: Any, role: str = "reader") -> Any:
    return client.post("/v1/feedback", json={"selection_id": selection_id, "outcome": outcome}, headers=bearer(role))


def test_a_selection_is_recorded_and_its_key_reports_the_latest_outcome(client: TestClient) -> None:
    answer = _select(client, k=3)
    selection_id = answer["selection_id"]
    assert len(selection_id) >= 32  # unguessable: 18 random bytes after the issue time
    assert _report(client, selection_id, "success").json() == {"selection_id": selection_id, "outcome": 1.0}
    assert _report(client, selection_id, 0.25).status_code == 200
    bank = _feedback(client).bank
    stored = {o.selection_id: o for o in bank.iter_outcomes()}[selection_id]
    assert stored.outcome == 0.25  # the latest counts
    assert list(stored.served) == [(e["id"], e["version"]) for e in answer["examples"]]
    assert bank.selection_owner(selection_id) == "app-server"  # the key's name, not the key


def test_another_keys_selection_answers_as_an_unknown_one(client: TestClient) -> None:
    selection_id = _select(client)["selection_id"]
    theirs = _report(client, selection_id, "failure", role="curator")
    unknown = _report(client, "x" * 32, "failure")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["field"] == "selection_id"
    assert theirs.json()["error"]["message"].replace(selection_id, "ID") == unknown.json()["error"]["message"].replace(
        "x" * 32, "ID"
    )
    assert "retention" in theirs.json()["error"]["message"]
    # The refused report stored nothing: the owner's own report is the first.
    assert selection_id not in {o.selection_id for o in _feedback(client).bank.iter_outcomes()}


@pytest.mark.parametrize("outcome", ["maybe", 1.5, -0.1, None, True])
def test_an_outcome_outside_the_contract_is_422_naming_it(client: TestClient, outcome: Any) -> None:
    response = _report(client, _select(client)["selection_id"], outcome)
    assert response.status_code == 422, response.text
    assert "outcome" in response.text


def test_expired_selections_are_pruned_and_their_ids_refused(client: TestClient) -> None:
    feedback = _feedback(client)
    old = SelectionRecord(OLD_ID, "app-server", now() - timedelta(days=31), "knn", "h", None, "v", None,
                          None, (("someone", 1),))  # fmt: skip
    feedback.bank.record_selections([old])
    fresh = _select(client)["selection_id"]
    assert feedback.recorder.prune() >= 1
    assert feedback.bank.selection_owner(OLD_ID) is None
    assert _report(client, OLD_ID, "success").status_code == 404
    assert _report(client, fresh, "success").status_code == 200


def test_only_an_id_issued_moments_ago_is_waited_for(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    # The wait is for a selection another replica has not written yet. An expired or never-issued id was
    # waited for too, each holding one of the bank's request slots for the whole wait: an application
    # reporting on stale ids kept curators' requests queueing behind it.
    service = keyed_service(tmp_path, embedder, **{**FAST, "feedback_wait_seconds": 2.0})
    with TestClient(create_app(service.settings, service, start="now")) as client:
        for stale in (OLD_ID, "A" * 32, "x" * 32):  # issued long ago, at the epoch, far in the future
            started = time.monotonic()
            assert _report(client, stale, "success").status_code == 404
            assert time.monotonic() - started < 1.5, stale
        started = time.monotonic()
        assert _report(client, new_selection_id(), "success").status_code == 404  # perhaps on its way: waited
        assert time.monotonic() - started >= 2.0
        fresh = _select(client)["selection_id"]
        assert abs(issued_at(fresh) - time.time()) < 5  # type: ignore[operator]
        assert _report(client, fresh, "success").status_code == 200


def test_an_examples_usage_counts_the_selections_that_served_it(client: TestClient) -> None:
    answer = _select(client, k=2, strategy="knn")
    served = answer["examples"][0]["id"]
    before = client.get(f"/v1/examples/{served}/usage", headers=bearer("curator")).json()
    _select(client, k=2, strategy="knn")  # the same prompt: the same two examples again
    assert _feedback(client).recorder.flush()
    after = client.get(f"/v1/examples/{served}/usage", headers=bearer("curator")).json()
    assert after["served_last_day"] >= before["served_last_day"] + 1 and after["served_kept"] >= 2
    assert client.get("/v1/examples/no-such-example/usage", headers=bearer("curator")).status_code == 404
    assert client.get(f"/v1/examples/{served}/usage", headers=bearer("reader")).status_code == 403


def test_a_full_queue_drops_the_record_and_never_blocks(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    service = keyed_service(tmp_path, embedder, selection_queue_size=2)
    service.bank.create_schema()
    recorder = SelectionRecorder(service.bank, service.settings)  # not started: nothing drains the queue
    answer = SelectResponse(examples=[], strategy="knn", index_version="v", took_ms=1.0)
    ids = [recorder.record("app", "a prompt", answer) for _ in range(3)]
    assert ids[0] and ids[1] and ids[2] is None and recorder.dropped == 1
    assert recorder.flush() and service.bank.selection_owner(ids[0]) == "app"
    service.bank.close()


def test_selections_made_together_are_written_in_one_transaction(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """The writer lingers after the first record, so a busy server commits a few times a second rather than
    once per select; a flush (feedback on a queued selection) writes at once, and stopping loses nothing."""
    service = keyed_service(tmp_path, embedder)
    service.bank.create_schema()
    recorder = SelectionRecorder(service.bank, service.settings)
    writes: list[int] = []
    record_selections = service.bank.record_selections
    service.bank.record_selections = lambda batch: (writes.append(len(batch)), record_selections(batch))[1]  # type: ignore[method-assign]
    answer = SelectResponse(examples=[], strategy="knn", index_version="v", took_ms=1.0)
    recorder.start()
    try:
        ids = [recorder.record("app", f"prompt {n}", answer) for n in range(40)]
        assert recorder.flush(timeout=5.0)
        assert sum(writes) == 40 and len(writes) <= 2, writes
        late = recorder.record("app", "one more", answer)
    finally:
        recorder.stop()
    assert all(service.bank.selection_owner(i) == "app" for i in [*ids, late] if i is not None)
    service.bank.close()


def _harmful_history(client: TestClient, harmful: str, others: list[str]) -> int:
    """Selections in one neighbourhood: those serving `harmful` mostly fail, the rest mostly succeed."""
    bank = _feedback(client).bank
    rng = np.random.default_rng(7)
    records, outcomes = [], []
    for n in range(450):
        serves_it = n < 150
        picked = [others[i] for i in rng.choice(len(others), 3 if serves_it else 4, replace=False)]
        served = [(harmful, 1), *[(i, 1) for i in picked]] if serves_it else [(i, 1) for i in picked]
        records.append(SelectionRecord(f"history-{n}", "app-server", now(), "knn", "h", None, "v", "kites", None,
                                       tuple(served)))  # fmt: skip
        outcomes.append(float(rng.random() < (0.2 if serves_it else 0.8)))
    bank.record_selections(records)
    for record, outcome in zip(records, outcomes, strict=True):
        assert bank.put_feedback(record.id, outcome, None)
    return 150


def test_a_harmful_example_is_demoted_flagged_for_review_with_its_reason_and_a_fix_resets_it(
    client: TestClient,
) -> None:
    examples = client.get("/v1/examples", params={"limit": 500}, headers=bearer("curator")).json()["examples"]
    harmful = next(e for e in examples if e["status"] == "approved" and e["version"] == 1 and e["topic"])
    others = [e["id"] for e in examples if e["version"] == 1 and e["id"] != harmful["id"]]
    served = _harmful_history(client, harmful["id"], others)
    _feedback(client).refresh()

    shown = client.get(f"/v1/examples/{harmful['id']}", headers=bearer("curator")).json()
    assert (
        shown["utility"]["high"] < 0 and shown["utility"]["served"] >= served
    )  # the other tests' selections served it too
    stats = client.get("/v1/stats", headers=bearer("curator")).json()["utility"]
    assert harmful["id"] in [f["id"] for f in stats["flagged"]] and stats["with_feedback"] >= 450
    export = client.get("/v1/examples/export", headers=bearer("curator")).text
    assert '"utility":{"value":' in export  # and import reads it back: ExampleImport ignores the field
    assert client.post("/v1/examples/import", content=export, headers={**bearer("curator"),
                       "content-type": "application/x-ndjson"}).json()["errors"] == []  # fmt: skip

    item = client.get("/v1/review/next", headers=bearer("curator")).json()
    assert item["reason"] == "negative_utility" and item["example"]["id"] == harmful["id"]
    assert re.match(
        r"served \d+ times; outcomes 0\.[12]\d against 0\.[5-7]\d expected for its neighbourhood", item["detail"]
    )

    # Selection: its score drops by weight x utility, and the why says utility moved it.
    body = {"prompt": f"A question about {harmful['topic']}", "strategy": "knn", "k": 50,
            "filters": {"topics": [harmful["topic"]]}, "order": "most_similar_first"}  # fmt: skip
    plain = {e["id"]: e for e in _select(client, **body, utility_weight=0)["examples"]}
    steered = {e["id"]: e for e in _select(client, **body)["examples"]}
    before, after = plain[harmful["id"]]["why"], steered[harmful["id"]]["why"]
    assert after["score"] == pytest.approx(before["score"] + shown["utility"]["value"], abs=0.01)  # weight 1
    assert "demoted by its measured utility" in after["reason"] and "utility" not in before["reason"]

    fixed = client.patch(
        f"/v1/examples/{harmful['id']}", json={"output": "a corrected answer"}, headers=bearer("curator")
    )
    assert fixed.status_code == 200 and fixed.json()["version"] == 2
    assert client.get(f"/v1/examples/{harmful['id']}", headers=bearer("curator")).json()["utility"] is None
    # Fixed: off the queue at once, even for the annotator holding its lease.
    again = client.get("/v1/review/next", headers=bearer("curator"))
    assert again.status_code == 204 or again.json()["example"]["id"] != harmful["id"]
    _feedback(client).refresh()
    assert client.get(f"/v1/examples/{harmful['id']}", headers=bearer("curator")).json()["utility"] is None
    assert harmful["id"] not in [
        f["id"] for f in client.get("/v1/stats", headers=bearer("curator")).json()["utility"]["flagged"]
    ]


def test_selections_survive_a_restart(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    first = keyed_service(tmp_path, embedder, **FAST)
    with TestClient(create_app(first.settings, first, start="now")) as client:
        selection_id = _select(client)["selection_id"]  # queued; written at the latest when the server stops
    first.bank.close()
    second = keyed_service(tmp_path, embedder, **FAST)
    with TestClient(create_app(second.settings, second, start="now")) as client:
        assert _report(client, selection_id, "success").status_code == 200
    second.bank.close()


def test_feedback_for_a_selection_still_queued_here_writes_the_queue_first(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    service = keyed_service(tmp_path, embedder, feedback_wait_seconds=0)
    service.bank.create_schema()
    recorder = SelectionRecorder(service.bank, service.settings)  # not started: nothing writes on its own
    feedback = FeedbackService(service.bank, UtilityBoard(), recorder, service.settings)
    answer = SelectResponse(examples=[], strategy="knn", index_version="v", took_ms=1.0)
    selection_id = recorder.record("app", "a prompt", answer)
    assert selection_id is not None and service.bank.selection_owner(selection_id) is None
    receipt = feedback.submit("app", FeedbackCreate(selection_id=selection_id, outcome="success"))
    assert receipt.outcome == 1.0 and service.bank.feedback_counts() == (1, 1)
    service.bank.close()
