"""Curation rules that hold on every path (issue 16): review answer keys, If-Match, preference export,
annotator identity from the key, leases, label undo, import modes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.service import FewshotService
from fewshot_service.settings import Settings

from ..helpers import write_jsonl

SEED = [
    {"external_id": "s-speed", "input": "A bus covers 180 km in 3 hours. What is its average speed?",
     "output": "60 km/h", "topic": "arithmetic", "difficulty": 1, "status": "approved"},
    {"external_id": "s-area", "input": "Find the area of a rectangle 7 m long and 3 m wide.", "output": "21 m²",
     "topic": "geometry", "difficulty": 1, "status": "approved"},
]  # fmt: skip

# key -> role:name; two curators so leases and label ownership have someone to refuse.
KEYS = {"ann": "ann-curator-key-0123456789", "bob": "bob-curator-key-0123456789", "ops": "ops-admin-key-0123456789"}
SPEC = f"{KEYS['ann']}:curator:ann,{KEYS['bob']}:curator:bob,{KEYS['ops']}:admin:ops"


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


Factory = Callable[..., TestClient]


@pytest.fixture
def start(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Factory]:
    """Starts an app over a two-example SQLite bank; keyed=True turns authentication on."""
    opened: list[tuple[TestClient, SqlBank]] = []

    def build(name: str = "main", *, keyed: bool = False, **overrides: Any) -> TestClient:
        root = tmp_path / name
        write_jsonl(root / "seed" / "seed.jsonl", SEED)
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
