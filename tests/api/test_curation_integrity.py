"""Curation rules that hold on every path (issue 16): review answer keys, If-Match, preference export,
annotator identity from the key, leases, label undo, import modes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..helpers import TWO_APPROVED as SEED
from ..helpers import write_jsonl
from ..pg import fresh_database

# key -> role:name; two curators so leases and label ownership have someone to refuse.
KEYS = {"ann": "ann-curator-key-0123456789", "bob": "bob-curator-key-0123456789", "ops": "ops-admin-key-0123456789"}
SPEC = f"{KEYS['ann']}:curator:ann,{KEYS['bob']}:curator:bob,{KEYS['ops']}:admin:ops"


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


Factory = Callable[..., TestClient]


@pytest.fixture(params=["sqlite", "postgresql"])
def start(request: pytest.FixtureRequest, tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Factory]:
    """Starts an app over a two-example bank, on SQLite and on the real PostgreSQL server; keyed=True turns
    authentication on."""
    opened: list[tuple[TestClient, SqlBank]] = []
    databases = ExitStack()

    def build(name: str = "main", *, keyed: bool = False, **overrides: Any) -> TestClient:
        root = tmp_path / name
        write_jsonl(root / "seed" / "seed.jsonl", SEED)
        if request.param == "postgresql":
            overrides.setdefault("database_url", databases.enter_context(fresh_database()))
        if keyed:
            overrides["api_keys"] = SPEC
        settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=root / "seed", **overrides)
        bank = SqlBank(settings.resolved_database_url())
        service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
        client = TestClient(create_app(settings, service, start="now"))
        client.__enter__()
        opened.append((client, bank))
        return client

    yield build
    for client, bank in opened:
        client.__exit__(None, None, None)
        bank.close()
    databases.close()


def pending(client: TestClient, text: str, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/examples", json={"input": text, "status": "pending", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    example: dict[str, Any] = response.json()["examples"][0]
    return example


# -- blind review, If-Match, preference export (issue 16 items 6 and 9) -------------------------------------
def test_blind_review_hides_the_gold_answer_and_the_others_quality(start: Factory) -> None:
    client = start()
    gold = {"verdict": "reject", "score": 1}
    item = pending(client, "What is 7 times 8?", output="54", metadata={"gold": gold, "origin": "quiz"})
    client.post(f"/v1/examples/{item['id']}/labels", json={"annotator": "x", "verdict": "needs_fix", "score": 2})
    blind = client.get("/v1/review/next", params={"annotator": "dee", "blind": True}).json()
    assert blind["example"]["id"] == item["id"]
    assert blind["example"]["metadata"] == {"origin": "quiz"} and blind["example"]["quality"] is None
    assert blind["labels"] is None
    seen = client.get("/v1/review/next", params={"annotator": "eve"})  # not blind: leased elsewhere, so nothing
    assert seen.status_code == 204
    assert client.get(f"/v1/examples/{item['id']}").json()["metadata"]["gold"] == gold  # stored untouched


def test_a_stale_if_match_is_honoured_even_with_a_body_version_and_star_means_any(start: Factory) -> None:
    client = start()
    item = pending(client, "What is 9 squared?", output="81")
    assert client.patch(f"/v1/examples/{item['id']}", json={"output": "81."}).json()["version"] == 2
    stale = client.patch(f"/v1/examples/{item['id']}", json={"output": "x", "version": 2}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "If-Match"
    both_stale = client.patch(
        f"/v1/examples/{item['id']}", json={"output": "x", "version": 1}, headers={"If-Match": '"1"'}
    )
    assert both_stale.status_code == 409 and both_stale.json()["error"]["field"] == "version"
    agreed = client.patch(f"/v1/examples/{item['id']}", json={"output": "81!", "version": 2}, headers={"If-Match": "2"})
    assert agreed.status_code == 200 and agreed.json()["version"] == 3
    star = client.patch(f"/v1/examples/{item['id']}", json={"output": "eighty-one"}, headers={"If-Match": "*"})
    assert star.status_code == 200 and star.json()["version"] == 4
    assert client.get(f"/v1/examples/{item['id']}").json()["output"] == "eighty-one"


def test_preference_export_keeps_only_each_annotators_latest_choice(start: Factory) -> None:
    client = start()
    pair = client.post("/v1/preferences", json={"prompt": "Say hi", "response_a": "Hello!", "response_b": "Go away."})
    url = f"/v1/preferences/{pair.json()['id']}/labels"
    for annotator, choice in [("a1", "b"), ("a2", "a"), ("a1", "a"), ("a2", "tie")]:
        assert client.post(url, json={"annotator": annotator, "choice": choice, "shown_first": "a"}).status_code == 201
    lines = [json.loads(line) for line in client.get("/v1/preferences/export").text.splitlines()]
    # a1 changed their mind to "a"; a2's latest is a tie, which carries no pair.
    assert [(r["annotator"], r["chosen"], r["rejected"]) for r in lines] == [("a1", "Hello!", "Go away.")]


# -- annotator identity from the key, leases, release and skip (issue 16 item 7) ----------------------------
def label(client: TestClient, example_id: str, who: str | None, body: dict[str, Any]) -> Any:
    return client.post(f"/v1/examples/{example_id}/labels", json=body, headers=as_(who) if who else None)


def test_the_annotator_is_the_keys_name_and_another_name_needs_an_admin(start: Factory) -> None:
    client = start(keyed=True, label_approvals_needed=2)
    item = pending(client, "What is 6 times 7?", headers=as_("ann"), output="42")
    own = label(client, item["id"], "ann", {"verdict": "approve", "score": 4})
    assert own.status_code == 201 and own.json()["label"]["annotator"] == "ann"
    assert own.json()["label"]["recorded_by"] is None
    posing = label(client, item["id"], "ann", {"annotator": "bob", "verdict": "approve", "score": 5})
    assert posing.status_code == 403 and posing.json()["error"]["field"] == "annotator"
    again = label(client, item["id"], "ann", {"annotator": "ann", "verdict": "approve", "score": 5})
    assert again.status_code == 201
    # One key is one rater: two approvals from ann do not meet the two-approvals rule.
    assert again.json()["example"]["status"] == "pending"
    for_bob = label(client, item["id"], "ops", {"annotator": "bob", "verdict": "approve", "score": 5})
    assert for_bob.status_code == 201
    assert for_bob.json()["label"] | {"annotator": "bob", "recorded_by": "ops"} == for_bob.json()["label"]
    assert for_bob.json()["example"]["status"] == "approved"
    # The history names the rater beside the key that acted: ops did not judge this example, bob did.
    labelled = [e for e in client.get(f"/v1/examples/{item['id']}/history", headers=as_("ann")).json()
                if e["action"] == "label"]  # fmt: skip
    assert [(e["actor"], e["changes"]["annotator"]) for e in labelled] == [
        ("ann", "ann"),
        ("ann", "ann"),
        ("ops", "bob"),
    ]
    # Preference choices follow the same rule.
    pair = client.post(
        "/v1/preferences", json={"prompt": "Hi", "response_a": "Hello", "response_b": "Bye"}, headers=as_("ann")
    ).json()
    url = f"/v1/preferences/{pair['id']}/labels"
    choice = {"choice": "a", "shown_first": "a"}
    assert client.post(url, json={**choice, "annotator": "bob"}, headers=as_("ann")).status_code == 403
    assert client.post(url, json=choice, headers=as_("ann")).json()["annotator"] == "ann"


def test_a_lease_belongs_to_its_annotator_until_released_and_skips_are_not_offered(start: Factory) -> None:
    client = start(keyed=True, review_lease_seconds=60.0)
    first = pending(client, "Convert 3 miles to kilometres.", headers=as_("ann"))
    second = pending(client, "What is the capital of Australia?", headers=as_("ann"))

    def next_item(who: str, **params: Any) -> str | None:
        response = client.get("/v1/review/next", params=params, headers=as_(who))
        assert response.status_code in (200, 204), response.text
        return None if response.status_code == 204 else str(response.json()["example"]["id"])

    assert next_item("ann") == first["id"]
    assert client.get("/v1/review/next", params={"annotator": "bob"}, headers=as_("ann")).status_code == 403
    assert next_item("bob") == second["id"]  # never the item leased to ann
    taken = label(client, first["id"], "bob", {"verdict": "reject", "score": 1})
    assert taken.status_code == 409 and taken.json()["error"]["field"] == "lease"
    assert "'ann'" in taken.json()["error"]["message"] and "until" in taken.json()["error"]["message"]
    assert client.post(f"/v1/review/{first['id']}/release", headers=as_("bob")).status_code == 409
    # An admin may label a leased item, and release any lease.
    assert client.post(f"/v1/review/{second['id']}/release", headers=as_("ops")).status_code == 204
    assert next_item("ann", skip=[first["id"]]) == second["id"]  # skipped: not offered (ann leases ahead)
    assert next_item("bob") is None  # ann holds both now
    assert client.post(f"/v1/review/{first['id']}/release", headers=as_("ann")).status_code == 204
    assert next_item("bob") == first["id"]
    assert next_item("ann", skip=[first["id"], second["id"]]) is None
    assert label(client, first["id"], "bob", {"verdict": "approve", "score": 4}).status_code == 201
    assert client.post("/v1/review/nope/release", headers=as_("ann")).status_code == 404


def test_with_keys_off_the_body_annotator_is_used_and_required(start: Factory) -> None:
    client = start()
    item = pending(client, "Name the largest planet.", output="Jupiter")
    assert label(client, item["id"], None, {"verdict": "approve"}).json()["error"]["field"] == "annotator"
    stored = label(client, item["id"], None, {"annotator": "alice", "verdict": "approve", "score": 4})
    assert stored.status_code == 201 and stored.json()["label"]["annotator"] == "alice"
    assert client.get("/v1/review/next").json()["error"]["field"] == "annotator"
    pending(client, "Name the smallest planet.", output="Mercury")
    leased = client.get("/v1/review/next", params={"annotator": "carl"}).json()["example"]["id"]
    assert label(client, leased, None, {"annotator": "dana", "verdict": "approve"}).status_code == 409
    assert client.post(f"/v1/review/{leased}/release", headers={"X-Fewshot-Actor": "dana"}).status_code == 409
    assert client.post(f"/v1/review/{leased}/release", headers={"X-Fewshot-Actor": "carl"}).status_code == 204
    assert label(client, leased, None, {"annotator": "dana", "verdict": "approve"}).status_code == 201


# -- label undo ------------------------------------------------------------------------------------------
def test_a_label_is_undone_by_its_annotator_and_the_status_follows(start: Factory) -> None:
    client = start(keyed=True)
    item = pending(client, "What is 15 percent of 80?", headers=as_("ann"), output="12")
    approve = label(client, item["id"], "ann", {"verdict": "approve", "score": 5}).json()
    assert approve["example"]["status"] == "approved" and approve["example"]["quality"] == 5
    url = f"/v1/examples/{item['id']}/labels/{approve['label']['id']}"
    assert client.delete(url, headers=as_("bob")).status_code == 404  # someone else's label: no probing
    assert client.delete(url, headers=as_("ann")).status_code == 204
    after = client.get(f"/v1/examples/{item['id']}", headers=as_("ann")).json()
    assert after["status"] == "pending" and after["quality"] is None
    assert client.delete(url, headers=as_("ann")).status_code == 404  # already withdrawn
    [kept] = client.get(f"/v1/examples/{item['id']}/labels", headers=as_("ann")).json()
    assert kept["id"] == approve["label"]["id"] and kept["withdrawn_at"] and kept["withdrawn_by"] == "ann"
    history = client.get(f"/v1/examples/{item['id']}/history", headers=as_("ann")).json()
    assert history[-1]["action"] == "unlabel" and history[-1]["changes"]["status"] == ["approved", "pending"]
    # The item needs a label again, and an admin may undo anyone's label.
    assert client.get("/v1/review/next", headers=as_("ann")).json()["example"]["id"] == item["id"]
    assert client.post(f"/v1/review/{item['id']}/release", headers=as_("ann")).status_code == 204
    reject = label(client, item["id"], "bob", {"verdict": "reject", "score": 1}).json()
    assert reject["example"]["status"] == "rejected"
    undo = client.delete(f"/v1/examples/{item['id']}/labels/{reject['label']['id']}", headers=as_("ops"))
    assert undo.status_code == 204
    assert client.get(f"/v1/examples/{item['id']}", headers=as_("ann")).json()["status"] == "pending"
    agreement = client.get("/v1/stats/agreement", headers=as_("ann")).json()
    assert agreement["annotators"] == [] and agreement["examples_labelled"] == 0  # withdrawn labels do not count


# -- import: the curator rules, and restore for admins (issue 16 item 4) ----------------------------------
def upload(client: TestClient, rows: list[dict[str, Any] | str], who: str, **params: str) -> Any:
    body = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    return client.post("/v1/examples/import", content=body.encode(), params=params, headers=as_(who))


def test_a_curators_import_follows_the_rules_of_the_api(start: Factory) -> None:
    client = start(keyed=True)
    speed = client.get("/v1/examples", params={"q": "bus"}, headers=as_("ann")).json()["examples"][0]
    edited = client.patch(f"/v1/examples/{speed['id']}", json={"tags": ["rate"]}, headers=as_("ann")).json()
    assert edited["version"] == 2
    forged = {"id": "f1", "example_id": speed["id"], "annotator": "mallory", "verdict": "approve", "score": 5,
              "created_at": "2020-01-01T00:00:00Z"}  # fmt: skip
    lines: list[dict[str, Any] | str] = [
        {"id": speed["id"], "input": speed["input"], "output": "wiped?", "version": 1},  # 1: stale
        {"id": speed["id"], "output": "60 km per hour", "version": 2, "input": speed["input"]},  # 2: update
        {
            "input": "What is 17 times 3?",
            "status": "approved",
            "quality": 5.0,
            "created_at": "1999-01-01T00:00:00Z",
        },  # 3: new, pending
        {"input": "Name the chemical symbol of gold.", "labels": [forged]},  # 4: labels refused
        {"id": "../../../etc/passwd", "input": "What is the square root of 144?"},  # 5: unsafe id
        {"id": "not-in-the-bank", "input": "How many sides has a hexagon?"},  # 6: new id assigned
        {"input": "A bus covers 180 km in 3 hours. What is the average speed?"},  # 7: semantic duplicate
        {"input": "what is 17 TIMES 3?"},  # 8: exact duplicate of line 3
    ]
    report = upload(client, lines, "ann")
    assert report.status_code == 200, report.text
    body = report.json()
    errors = {e["line"]: e["message"] for e in body["errors"]}
    assert set(errors) == {1, 4, 5, 7, 8}, body
    assert errors[1].startswith("version") and errors[4].startswith("labels") and errors[5].startswith("id")
    assert speed["id"] in errors[7] and "semantic" in errors[7] and "duplicate" in errors[8]
    notices = {n["line"]: n["message"] for n in body["notices"]}
    assert "status, quality, created_at ignored" in notices[3] and "not-in-the-bank" in notices[6]
    assert (body["created"], body["updated"], body["imported"]) == (2, 1, 3)

    after = client.get(f"/v1/examples/{speed['id']}", headers=as_("ann")).json()
    # Only the given fields changed, at the version the line named: tags and status stay.
    assert after["output"] == "60 km per hour" and after["tags"] == ["rate"] and after["status"] == "approved"
    assert after["version"] == 3 and client.get(f"/v1/examples/{speed['id']}/labels", headers=as_("ann")).json() == []
    new = client.get("/v1/examples", params={"status": ["pending"]}, headers=as_("ann")).json()["examples"]
    assert {e["input"] for e in new} == {"What is 17 times 3?", "How many sides has a hexagon?"}
    assert all(e["quality"] is None and e["created_at"] > "2026" and e["id"] != "not-in-the-bank" for e in new)
    assert client.get("/v1/examples/not-in-the-bank", headers=as_("ann")).status_code == 404


def test_restore_is_for_admins_and_a_deleted_id_fails_only_its_line(start: Factory) -> None:
    client = start(keyed=True)
    exported = client.get("/v1/examples/export", headers=as_("ann")).text
    refused = client.post("/v1/examples/import", params={"mode": "restore"}, content=exported, headers=as_("ann"))
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "mode"
    doomed = pending(client, "Which gas do plants absorb?", headers=as_("ann"))
    assert client.delete(f"/v1/examples/{doomed['id']}", headers=as_("ann")).status_code == 204
    reused = {**doomed, "external_id": "reuse"}
    lines = [json.loads(line) for line in exported.splitlines()]
    report = upload(client, [lines[0], reused, {"id": "../x", "input": "Sneaky?"}, lines[1]], "ops", mode="restore")
    assert report.status_code == 200, report.text
    errors = {e["line"]: e["message"] for e in report.json()["errors"]}
    assert set(errors) == {2, 3} and "deleted" in errors[2] and errors[3].startswith("id")
    assert report.json()["unchanged"] == 2


@pytest.mark.parametrize("mode", ["curate", "restore"])
def test_a_version_past_what_the_bank_stores_fails_only_its_line(start: Factory, mode: str) -> None:
    # Found by the fuzzer: a restored version of 10**35 reached the database and answered 500.
    client = start(keyed=True)
    huge = {"id": "huge-version", "input": "How many grams are in 3.5 kg?", "output": "3500 g", "version": 10**35}
    edge = {"id": "edge-version", "input": "How many metres are in 4.2 km?", "output": "4200 m", "version": 10**9}
    report = upload(client, [huge, edge], "ops", **({"mode": mode} if mode == "restore" else {}))
    assert report.status_code == 200, report.text
    errors = {e["line"]: e["message"] for e in report.json()["errors"]}
    assert set(errors) == {1} and errors[1].startswith("version"), errors
    assert report.json()["imported"] == 1
    assert client.get("/v1/examples/huge-version", headers=as_("ops")).status_code == 404
