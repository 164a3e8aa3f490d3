"""Curation through the HTTP API: read-your-writes, duplicates, versions, labels, review, preferences, export."""

from __future__ import annotations

import json
import time
import unicodedata
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

from ..helpers import CountingEmbedder, write_jsonl
from ..pg import fresh_database

SMALL_SEED = [
    {"external_id": "s-speed", "input": "A bus covers 180 km in 3 hours. What is its average speed?",
     "output": "60 km/h", "topic": "arithmetic", "difficulty": 1, "status": "approved", "steps": ["180 / 3 = 60."]},
    {"external_id": "s-area", "input": "Find the area of a rectangle 7 m long and 3 m wide.", "output": "21 m²",
     "topic": "geometry", "difficulty": 1, "status": "approved", "tags": ["area"]},
    {"external_id": "s-prob", "input": "A fair coin is tossed twice. What is the chance of two heads?", "output": "1/4",
     "topic": "probability", "difficulty": 2, "status": "approved"},
    {"external_id": "s-code", "input": "What does print(sum(range(5))) output in Python?", "output": "10",
     "topic": "programming", "difficulty": 1, "status": "approved"},
]  # fmt: skip

KITE = "A kite on a 50 m string makes a 30 degree angle with the flat ground. How high is the kite?"
KITE_QUERY = {"prompt": "How high does a kite fly on a 50 metre string held at 30 degrees?", "k": 1, "strategy": "knn"}

Factory = Callable[..., TestClient]


@pytest.fixture(params=["sqlite", "postgresql"])
def curation(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[Factory]:
    """Starts an app over a small seed bank, on SQLite and on the real PostgreSQL server (a fresh database
    per app); extra settings and an embedder wrapper may be given."""
    opened: list[tuple[TestClient, SqlBank]] = []
    databases = ExitStack()

    def start(name: str = "main", use: Any = None, **overrides: Any) -> TestClient:
        root = tmp_path / name
        write_jsonl(root / "seed" / "small.jsonl", SMALL_SEED)
        if request.param == "postgresql":
            overrides.setdefault("database_url", databases.enter_context(fresh_database()))
        settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=root / "seed", **overrides)
        bank = SqlBank(settings.resolved_database_url())
        service = FewshotService(settings, bank, lambda: use or embedder, IndexStore(settings.index_dir))
        client = TestClient(create_app(settings, service, start="now"))
        client.__enter__()
        opened.append((client, bank))
        return client

    yield start
    for client, bank in opened:
        client.__exit__(None, None, None)
        bank.close()
    databases.close()


def add(client: TestClient, body: dict[str, Any], actor: str = "cara", **params: Any) -> dict[str, Any]:
    response = client.post("/v1/examples", json=body, params=params, headers={"X-Fewshot-Actor": actor})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def selected_ids(client: TestClient, **body: Any) -> list[str]:
    response = client.post("/v1/select", json={**KITE_QUERY, **body})
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["examples"]]


def test_every_write_is_visible_to_the_very_next_select(curation: Factory) -> None:
    client = curation()
    [kite] = add(client, {"input": KITE, "output": "25 m", "topic": "geometry", "status": "approved"})["examples"]
    assert selected_ids(client) == [kite["id"]]

    edited = client.patch(f"/v1/examples/{kite['id']}", json={"status": "pending", "version": 1})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    assert kite["id"] not in selected_ids(client)
    assert selected_ids(client, filters={"statuses": ["pending"]}) == [kite["id"]]

    approved = client.post(
        f"/v1/examples/{kite['id']}/labels", json={"annotator": "ann", "verdict": "approve", "score": 5}
    )
    assert approved.json()["example"]["status"] == "approved" and approved.json()["example"]["quality"] == 5.0
    assert selected_ids(client) == [kite["id"]]

    new_input = "A drone climbs along a straight 80 m line at 30 degrees to the ground. How high does it get?"
    client.patch(f"/v1/examples/{kite['id']}", json={"input": new_input}, headers={"If-Match": '"3"'})
    assert selected_ids(client, prompt="How much height does a drone gain flying 80 m at a 30 degree climb?") == [
        kite["id"]
    ]

    rejected = client.post(
        f"/v1/examples/{kite['id']}/labels", json={"annotator": "bob", "verdict": "reject", "score": 1}
    )
    assert rejected.json()["example"]["status"] == "rejected"
    assert kite["id"] not in selected_ids(client, prompt=new_input + " Explain.", k=4)

    assert client.delete(f"/v1/examples/{kite['id']}").status_code == 204
    everything = {"statuses": ["approved", "pending", "rejected"]}
    assert kite["id"] not in selected_ids(client, prompt=new_input + " Explain.", k=10, filters=everything)
    assert client.get(f"/v1/examples/{kite['id']}").status_code == 404

    history = client.get(f"/v1/examples/{kite['id']}/history").json()
    assert [h["action"] for h in history] == ["create", "update", "label", "update", "label", "delete"]
    assert history[0]["actor"] == "cara" and history[2]["actor"] == "ann" and history[4]["actor"] == "bob"
    assert history[1]["changes"] == {"status": ["approved", "pending"]}
    assert history[4]["changes"]["status"] == ["approved", "rejected"]


def test_an_actor_named_outside_ascii_is_recorded_as_written(curation: Factory) -> None:
    client = curation()
    # curl sends a header as the terminal's UTF-8; an older client may send Latin-1, which is kept as such.
    # One that shows nothing (blank, a zero-width space) is no name: the change is anonymous, as without one.
    cases = [("José Núñez".encode(), "José Núñez", "What is 7 squared?"),
             ("Zoë".encode("latin-1"), "Zoë", "How many sides has a hexagon?"),
             (b"   ", "anonymous", "Name the capital of Peru."),
             ("\u200b\u200d".encode(), "anonymous", "Which gas do plants take in for photosynthesis?")]  # fmt: skip
    for sent, recorded, question in cases:
        response = client.post("/v1/examples", json={"input": question, "output": "-"},
                               headers={"X-Fewshot-Actor": sent})  # fmt: skip
        assert response.status_code == 201, response.text
        history = client.get(f"/v1/examples/{response.json()['examples'][0]['id']}/history").json()
        assert history[0]["actor"] == recorded


def test_an_edit_re_embeds_only_when_the_input_changes(
    curation: Factory, embedder: SentenceTransformerEmbedder
) -> None:
    counting = CountingEmbedder(embedder)
    client = curation(use=counting)
    [kite] = add(client, {"input": KITE, "output": "25 m", "status": "approved"})["examples"]
    before = counting.texts_embedded
    client.patch(f"/v1/examples/{kite['id']}", json={"output": "25 metres", "tags": ["trig"], "difficulty": 3})
    client.patch(f"/v1/examples/{kite['id']}", json={"input": KITE})  # same text: nothing to embed
    assert counting.texts_embedded == before
    client.patch(f"/v1/examples/{kite['id']}", json={"input": KITE + " Give the answer in metres."})
    assert counting.texts_embedded == before + 1
    # The attribute changes reached the index too: the new tag filters it in.
    assert selected_ids(client, filters={"tags": ["trig"], "difficulty_min": 3}) == [kite["id"]]


def test_a_stale_version_gets_409_and_changes_nothing(curation: Factory) -> None:
    client = curation()
    [kite] = add(client, {"input": KITE, "output": "25 m"})["examples"]
    fetched = client.get(f"/v1/examples/{kite['id']}")
    assert fetched.headers["ETag"] == '"1"'
    assert client.patch(f"/v1/examples/{kite['id']}", json={"output": "A", "version": 1}).status_code == 200
    for attempt in ({"json": {"output": "B", "version": 1}}, {"json": {"output": "B"}, "headers": {"If-Match": '"1"'}}):
        stale = client.patch(f"/v1/examples/{kite['id']}", **attempt)  # type: ignore[arg-type]
        assert stale.status_code == 409 and stale.json()["error"]["field"] == "version"
    assert client.get(f"/v1/examples/{kite['id']}").json()["output"] == "A"
    bad = client.patch(f"/v1/examples/{kite['id']}", json={"output": "C"}, headers={"If-Match": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "If-Match"


def test_duplicates_are_caught_against_the_bank_and_within_a_batch(
    curation: Factory, embedder: SentenceTransformerEmbedder
) -> None:
    client = curation()
    [kite] = add(client, {"input": KITE, "output": "25 m"})["examples"]
    count = len(client.get("/v1/examples", params={"limit": 500}).json()["examples"])

    exact = client.post("/v1/examples", json={"input": "  " + KITE.upper().replace(" ", "   ") + " "})
    assert exact.status_code == 409
    assert exact.json()["error"]["duplicates"] == [
        {"position": 0, "duplicate_of": kite["id"], "similarity": 1.0, "kind": "exact"}
    ]
    paraphrase = "A kite flying on a 50 m string makes a 30 degree angle with flat ground. How high is it?"
    vectors = embedder.embed([KITE, paraphrase])
    assert float(vectors[0] @ vectors[1]) >= 0.95
    semantic = client.post("/v1/examples", json={"input": paraphrase}).json()["error"]["duplicates"][0]
    assert semantic["duplicate_of"] == kite["id"] and semantic["kind"] == "semantic" and semantic["similarity"] >= 0.95

    fresh = "What is the boiling point of water at sea level in Fahrenheit?"
    batch = {
        "examples": [{"input": fresh}, {"input": fresh.lower()}, {"input": paraphrase}, {"input": "What is 7 x 8?"}]
    }
    rejected = client.post("/v1/examples", json=batch)
    assert rejected.status_code == 409
    kinds = {(d["position"], d["duplicate_of"], d["kind"]) for d in rejected.json()["error"]["duplicates"]}
    assert kinds == {(1, "batch:0", "exact"), (2, kite["id"], "semantic")}
    assert len(client.get("/v1/examples", params={"limit": 500}).json()["examples"]) == count  # nothing stored

    skipped = add(client, batch, on_duplicate="skip")
    assert skipped["skipped"] == [1, 2] and [e["input"] for e in skipped["examples"]] == [fresh, "What is 7 x 8?"]
    kept = add(client, {"input": paraphrase}, on_duplicate="keep")
    assert kept["duplicates"][0]["duplicate_of"] == kite["id"] and len(kept["examples"]) == 1


def test_an_edit_that_would_make_an_input_a_duplicate_is_refused_as_an_add_would_be(curation: Factory) -> None:
    """Adding catches duplicates; editing an input into another example's must too (PATCH and an import line
    that updates), or one edit undoes what the check on adding kept out. Fixing a typo in the example's own
    input is not a duplicate of itself, and on_duplicate=keep keeps the edit as it keeps an add."""
    client = curation(seed_on_empty=False)
    kite, other = add(client, {"examples": [
        {"input": KITE, "output": "25 m", "external_id": "kite"},
        {"input": "What is the boiling point of water at sea level in Fahrenheit?", "external_id": "water"},
    ]})["examples"]  # fmt: skip
    page = f"/v1/examples/{other['id']}"
    paraphrase = "A kite flying on a 50 m string makes a 30 degree angle with flat ground. How high is it?"
    for text, kind in [("  " + KITE.upper() + " ", "exact"), (paraphrase, "semantic")]:
        refused = client.patch(page, json={"input": text})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "duplicate" and error["field"] == "input"
        assert error["duplicates"][0]["duplicate_of"] == kite["id"] and error["duplicates"][0]["kind"] == kind
        assert f"would make example {other['id']} a duplicate of {kite['id']}" in error["message"]
    assert client.get(page).json()["version"] == 1  # nothing changed
    typo = client.patch(f"/v1/examples/{kite['id']}", json={"input": KITE.replace("string", "strnig")})
    assert typo.status_code == 200, typo.text
    line = json.dumps({"external_id": "water", "input": typo.json()["input"].lower()})
    report = client.post("/v1/examples/import", content=line.encode()).json()
    assert report["imported"] == 0 and report["errors"][0]["line"] == 1
    assert f"input: duplicate of example {kite['id']} (exact)" in report["errors"][0]["message"]
    assert client.get(page).json()["input"].startswith("What is the boiling point")
    kept = client.patch(page, params={"on_duplicate": "keep"}, json={"input": paraphrase})
    assert kept.status_code == 200 and kept.json()["input"] == paraphrase
    bad = client.patch(page, params={"on_duplicate": "skip"}, json={"output": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "on_duplicate"


CREPES = "Zoë's café sells 12 crêpes an hour. How many crêpes does it sell in 3 hours?"
# The same text as a reader sees it, typed another way. Full-width digits are the case the semantic check
# missed too (the model reads "１２" apart from "12"): such a copy was stored.
SAME_AS_READ = {
    "decomposed accents (NFD)": unicodedata.normalize("NFD", CREPES),
    "full-width digits": CREPES.replace("12", "１２").replace("3", "３"),
    "a zero-width space inside a word": CREPES.replace("crêpes an", "crê\u200bpes an"),
    "a soft hyphen": CREPES.replace("sells", "sel\u00adls"),
    "a byte-order mark and a direction mark": "\ufeff" + CREPES.replace("How", "\u200eHow"),
    "no-break and ideographic spaces, upper case": CREPES.upper().replace(" ", "\u00a0", 3).replace(" ", "\u3000", 2),
}


@pytest.mark.parametrize("variant", SAME_AS_READ.values(), ids=SAME_AS_READ.keys())
def test_an_input_typed_differently_but_read_the_same_is_an_exact_duplicate(curation: Factory, variant: str) -> None:
    client = curation()
    [crepes] = add(client, {"input": CREPES, "output": "36"})["examples"]
    refused = client.post("/v1/examples", json={"input": variant, "output": "36"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["duplicates"] == [
        {"position": 0, "duplicate_of": crepes["id"], "similarity": 1.0, "kind": "exact"}
    ]


def test_a_batch_holding_one_text_typed_two_ways_is_refused(curation: Factory) -> None:
    batch = {"examples": [{"input": "What is 9 x 7?"}, {"input": "ＷＨＡＴ is ９ x ７​?"}]}
    refused = curation().post("/v1/examples", json=batch)
    assert refused.status_code == 409
    assert refused.json()["error"]["duplicates"] == [
        {"position": 1, "duplicate_of": "batch:0", "similarity": 1.0, "kind": "exact"}
    ]


def test_texts_that_read_differently_are_not_exact_duplicates(curation: Factory) -> None:
    """Normalisation stops where the meaning could change: a superscript is not a digit (NFKC would say it is),
    "ß" is not "ss" (full case folding would say it is), and a zero-width joiner changes how a word is drawn."""
    client = curation()
    for first, second in [
        ("What is 2³ + 1?", "What is 23 + 1?"),
        ("Was bedeutet Maße?", "Was bedeutet Masse?"),
        (
            "Which word is \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645?",
            "Which word is \u0645\u06cc\u062e\u0648\u0627\u0647\u0645?",
        ),
    ]:
        stored = add(client, {"examples": [{"input": first}, {"input": second}]}, on_duplicate="keep")
        assert len(stored["examples"]) == 2
        assert "exact" not in {d["kind"] for d in stored["duplicates"]}, (first, second)


def test_batches_are_all_or_nothing_and_bounded(curation: Factory) -> None:
    client = curation()
    before = len(client.get("/v1/examples").json()["examples"])
    invalid = client.post(
        "/v1/examples", json={"examples": [{"input": "What is 3 + 3?"}, {"input": "x", "difficulty": 9}]}
    )
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "examples.1.difficulty"
    conflict = client.post(
        "/v1/examples",
        json={"examples": [{"input": "What is 3 + 3?"}, {"input": "Name a prime", "external_id": "s-area"}]},
    )
    assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "external_id"
    assert len(client.get("/v1/examples").json()["examples"]) == before
    too_many = client.post("/v1/examples", json={"examples": [{"input": f"What is {n} + 1?"} for n in range(501)]})
    assert too_many.status_code == 413 and "at most 500" in too_many.json()["error"]["message"]


def test_label_rules_and_errors(curation: Factory) -> None:
    client = curation()
    speed = client.get("/v1/examples", params={"q": "bus covers"}).json()["examples"][0]
    url = f"/v1/examples/{speed['id']}/labels"
    ok = client.post(url, json={"annotator": "ann", "verdict": "needs_fix", "score": 3, "issues": ["bad_steps"],
                                "step_ratings": [-1], "corrected_output": "60 km per hour"})  # fmt: skip
    assert ok.status_code == 201
    label = ok.json()["label"]
    assert label["first_wrong_step"] == 0 and label["annotator"] == "ann" and label["created_at"]
    assert ok.json()["example"]["status"] == "pending"
    for body, field in [
        ({"annotator": "ann", "verdict": "approve", "score": 6}, "score"),
        ({"annotator": "ann", "verdict": "maybe"}, "verdict"),
        ({"annotator": "ann", "verdict": "approve", "step_ratings": [2]}, "step_ratings.0"),
        ({"annotator": "ann", "verdict": "approve", "step_ratings": [1, 1]}, "step_ratings"),
        ({"annotator": "ann", "verdict": "approve", "first_wrong_step": 1}, "first_wrong_step"),
        ({"annotator": "ann", "verdict": "approve", "issues": ["boring"]}, "issues.0"),
        ({"annotator": "", "verdict": "approve"}, "annotator"),
    ]:
        response = client.post(url, json=body)
        assert response.status_code == 422 and response.json()["error"]["field"] == field, (body, response.text)
    assert client.post("/v1/examples/nope/labels", json={"annotator": "a", "verdict": "approve"}).status_code == 404
    client.delete(f"/v1/examples/{speed['id']}")
    gone = client.post(url, json={"annotator": "a", "verdict": "approve"})
    assert gone.status_code == 409
    assert [lab["verdict"] for lab in client.get(url).json()] == ["needs_fix"]  # labels are kept, append-only


def test_a_label_given_on_a_version_edited_since_is_refused(curation: Factory) -> None:
    """A curator approved output "56"; meanwhile someone changed it to "65": the approval must not count for
    content nobody judged. A label that names the version it judged is checked against the example's."""
    client = curation()
    [example] = add(client, {"input": "What is 7 x 8?", "output": "56"})["examples"]
    url = f"/v1/examples/{example['id']}/labels"
    changed = client.patch(f"/v1/examples/{example['id']}", json={"output": "65"}).json()
    assert changed["version"] == 2
    stale = client.post(url, json={"annotator": "ann", "verdict": "approve", "score": 5, "version": 1})
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "version"
    assert (
        "at version 2: its output changed since; the label was given on version 1" in stale.json()["error"]["message"]
    )
    assert client.get(url).json() == [] and client.get(f"/v1/examples/{example['id']}").json()["status"] == "pending"
    current = client.post(url, json={"annotator": "ann", "verdict": "approve", "score": 5, "version": 2})
    assert current.status_code == 201 and "version" not in current.json()["label"]
    unversioned = client.post(url, json={"annotator": "bob", "verdict": "approve", "score": 4})
    assert unversioned.status_code == 201  # callers that do not send it label as before
    refused = client.post(url, json={"annotator": "ann", "verdict": "approve", "version": 0})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "version"


def test_a_label_given_before_other_raters_moved_the_status_still_counts(curation: Factory) -> None:
    """Other raters' labels and edits of what nobody judges (topic, tags) move the version, not what the label
    is about: a rater who looked at version 1 may still label it. An edit of the steps since still refuses it,
    and a version the example never had is refused as well."""
    client = curation()
    [example] = add(client, {"input": "What is 9 x 6?", "output": "54", "steps": ["9 x 6 = 54"]})["examples"]
    url, page = f"/v1/examples/{example['id']}/labels", f"/v1/examples/{example['id']}"
    assert client.post(url, json={"annotator": "ann", "verdict": "approve", "score": 5}).status_code == 201
    assert client.patch(page, json={"topic": "times_tables", "tags": ["x"]}).status_code == 200
    assert client.post(url, json={"annotator": "bob", "verdict": "approve", "score": 3}).status_code == 201
    assert client.get(page).json()["version"] > 1  # the labels moved quality and status, the edit the topic
    late = client.post(url, json={"annotator": "cyd", "verdict": "approve", "score": 4, "version": 1})
    assert late.status_code == 201, late.text
    assert client.patch(page, json={"steps": ["9 x 6 = 56"]}).status_code == 200
    now_at = client.get(page).json()["version"]
    for seen, reason in [(1, "its steps changed since"), (now_at - 1, "its steps changed since"),
                         (now_at + 1, f"it has never been at version {now_at + 1}")]:  # fmt: skip
        stale = client.post(url, json={"annotator": "dan", "verdict": "reject", "score": 1, "version": seen})
        assert stale.status_code == 409 and stale.json()["error"]["field"] == "version", (seen, stale.text)
        assert f"is at version {now_at}: {reason}; the label was given on version {seen}" in stale.text
    assert [label["annotator"] for label in client.get(url).json()] == ["ann", "bob", "cyd"]
    assert client.post(url, json={"annotator": "dan", "verdict": "reject", "version": now_at}).status_code == 201


def test_tags_are_a_set_kept_in_the_order_typed(curation: Factory) -> None:
    client = curation(seed_on_empty=False)
    [example] = add(client, {"input": "What is 3 cubed?", "tags": ["powers", "cubes", " powers ", "cubes"]})["examples"]
    assert example["tags"] == ["powers", "cubes"]
    edited = client.patch(f"/v1/examples/{example['id']}", json={"tags": ["b", "a", "a", "b"]})
    assert edited.json()["tags"] == ["b", "a"]


def test_unknown_ids_are_404(curation: Factory) -> None:
    client = curation()
    for method, path in [("GET", "/v1/examples/nope"), ("PATCH", "/v1/examples/nope"), ("DELETE", "/v1/examples/nope"),
                         ("GET", "/v1/examples/nope/history")]:  # fmt: skip
        response = client.request(method, path, json={"output": "x"} if method == "PATCH" else None)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_review_queue_order_leases_and_blind_mode(curation: Factory) -> None:
    # Leases long enough that a loaded machine cannot expire one between two calls of this test.
    client = curation(review_lease_seconds=3.0)
    llm = add(client, {"examples": [
        {"input": "Convert 3 miles to kilometres.", "source": "llm", "status": "pending"},
        {"input": "What is the capital of Australia?", "source": "llm", "status": "pending"},
    ]})["examples"]  # fmt: skip
    [curated] = add(client, {"input": "Which gas do plants absorb for photosynthesis?", "status": "pending"})[
        "examples"
    ]
    disputed = client.get("/v1/examples", params={"q": "coin is tossed"}).json()["examples"][0]
    client.post(f"/v1/examples/{disputed['id']}/labels", json={"annotator": "x", "verdict": "approve", "score": 4})
    client.post(f"/v1/examples/{disputed['id']}/labels", json={"annotator": "y", "verdict": "reject", "score": 2})

    def next_for(annotator: str, blind: bool = False) -> dict[str, Any] | None:
        response = client.get("/v1/review/next", params={"annotator": annotator, "blind": blind})
        return None if response.status_code == 204 else response.json()

    first = next_for("ann")
    llm_ids = {e["id"] for e in llm}
    assert first and first["example"]["id"] in llm_ids and first["reason"] == "pending_llm"
    assert next_for("ann")["example"]["id"] == first["example"]["id"]  # type: ignore[index]  # same lease
    second = next_for("bob")
    # Never the item leased to ann: bob gets the other LLM-generated one.
    assert second and second["example"]["id"] == (llm_ids - {first["example"]["id"]}).pop()

    client.post(
        f"/v1/examples/{first['example']['id']}/labels", json={"annotator": "ann", "verdict": "approve", "score": 4}
    )
    third = next_for("ann")
    assert third and third["example"]["id"] == curated["id"] and third["reason"] == "pending"
    client.post(f"/v1/examples/{curated['id']}/labels", json={"annotator": "ann", "verdict": "approve", "score": 4})
    client.post(
        f"/v1/examples/{second['example']['id']}/labels", json={"annotator": "bob", "verdict": "approve", "score": 5}
    )

    open_review = next_for("cy")
    assert open_review and open_review["example"]["id"] == disputed["id"] and open_review["reason"] == "disagreement"
    assert {lab["annotator"] for lab in open_review["labels"]} == {"x", "y"}
    time.sleep(3.1)  # cy's lease expires
    blind = next_for("dee", blind=True)
    assert blind and blind["example"]["id"] == disputed["id"] and blind["labels"] is None
    assert next_for("x") is None  # x labelled everything that needs a label


def test_preference_pairs_export_as_chosen_and_rejected(curation: Factory) -> None:
    client = curation()
    pair = client.post("/v1/preferences", json={"prompt": "Say hi", "response_a": "Hello!", "response_b": "Go away."})
    assert pair.status_code == 201
    url = f"/v1/preferences/{pair.json()['id']}/labels"
    for annotator, choice, shown in [("a1", "a", "a"), ("a2", "b", "b"), ("a3", "tie", "a"), ("a4", "both_bad", "b")]:
        label = client.post(url, json={"annotator": annotator, "choice": choice, "shown_first": shown})
        assert label.status_code == 201 and label.json()["shown_first"] == shown
    lines = [json.loads(line) for line in client.get("/v1/preferences/export").text.splitlines()]
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in lines] == [
        ("Say hi", "Hello!", "Go away."),
        ("Say hi", "Go away.", "Hello!"),
    ]
    assert (
        client.post(
            "/v1/preferences/none/labels", json={"annotator": "a", "choice": "a", "shown_first": "a"}
        ).status_code
        == 404
    )
    assert client.post(url, json={"annotator": "a", "choice": "c", "shown_first": "a"}).status_code == 422


def test_export_then_import_reproduces_the_bank_with_labels(curation: Factory) -> None:
    client = curation()
    speed = client.get("/v1/examples", params={"q": "bus"}).json()["examples"][0]
    client.post(f"/v1/examples/{speed['id']}/labels", json={"annotator": "ann", "verdict": "approve", "score": 4})
    exported = client.get("/v1/examples/export").text
    records = [json.loads(line) for line in exported.splitlines()]
    assert len(records) == len(SMALL_SEED) and any(r["labels"] for r in records)

    other = curation("other", seed_on_empty=False)
    report = other.post(
        "/v1/examples/import",
        params={"mode": "restore"},
        content=exported.encode(),
        headers={"content-type": "application/x-ndjson"},
    )
    assert report.status_code == 200 and report.json()["imported"] == len(SMALL_SEED)
    assert report.json()["errors"] == [] and report.json()["created"] == len(SMALL_SEED)
    assert other.get("/v1/examples/export").text == exported
    # and the imported bank is selectable at once
    found = other.post("/v1/select", json={"prompt": "How fast is a train doing 240 km in 4 hours?", "k": 1})
    assert found.json()["examples"][0]["id"] == speed["id"]


def test_a_restore_keeps_the_instant_of_times_written_with_an_offset(curation: Factory) -> None:
    # An export from elsewhere may write its times with an offset; SQLite stored 12:00+08:00 as 12:00 UTC.
    client = curation(seed_on_empty=False)
    at = "2026-01-01T12:00:00+08:00"
    label = {"id": "perth-label", "example_id": "perth", "annotator": "ann", "verdict": "approve", "created_at": at}
    line = {"id": "perth", "input": "It is noon in Perth. What time is it in London?", "output": "4 a.m.",
            "status": "approved", "created_at": at, "updated_at": at, "labels": [label]}  # fmt: skip
    report = client.post("/v1/examples/import", params={"mode": "restore"}, content=json.dumps(line).encode())
    assert report.status_code == 200 and report.json()["created"] == 1, report.text
    stored = client.get("/v1/examples/perth").json()
    assert stored["created_at"] == stored["updated_at"] == "2026-01-01T04:00:00Z"
    assert client.get("/v1/examples/perth/labels").json()[0]["created_at"] == "2026-01-01T04:00:00Z"


def test_jsonl_upload_reports_bad_lines_and_keeps_the_rest(curation: Factory) -> None:
    client = curation(seed_on_empty=False)
    lines = [
        json.dumps({"input": "What is 12 squared?", "output": "144", "external_id": "u1"}),
        "{broken",
        json.dumps({"input": "Name the largest planet.", "output": "Jupiter", "difficulty": 7}),
        json.dumps({"input": "What is 2 to the 10th power?", "output": "1024", "external_id": "u2"}),
    ]
    report = client.post("/v1/examples/import", content="\n".join(lines).encode()).json()
    assert report["imported"] == 2
    assert [e["line"] for e in report["errors"]] == [2, 3] and "difficulty" in report["errors"][1]["message"]
    again = client.post("/v1/examples/import", content="\n".join(lines).encode()).json()
    assert again["imported"] == 2
    assert len(client.get("/v1/examples").json()["examples"]) == 2  # idempotent on external_id


def test_listing_filters_and_pages(curation: Factory) -> None:
    client = curation()
    add(client, {"examples": [{"input": f"What is {n} times 11?", "topic": "arithmetic", "tags": ["times"],
                               "status": "pending"} for n in range(12)]})  # fmt: skip
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get("/v1/examples", params={"limit": 5, **({"cursor": cursor} if cursor else {})}).json()
        seen += [e["id"] for e in page["examples"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 16

    def ids(**params: Any) -> set[str]:
        return {
            e["external_id"] or e["input"]
            for e in client.get("/v1/examples", params={"limit": 500, **params}).json()["examples"]
        }

    assert ids(topic=["geometry", "probability"]) == {"s-area", "s-prob"}
    assert ids(tag=["area"]) == {"s-area"}
    assert ids(q="PRINT(") == {"s-code"}
    assert len(ids(status=["pending"], tag=["times"])) == 12
    assert ids(difficulty_min=2) == {"s-prob"}
    assert client.get("/v1/examples", params={"limit": 0}).json()["error"]["field"] == "limit"
    # Tags as curators write them: accents, other scripts, quotes and backslashes are found like any other.
    odd_tags = ["café", "日本語", 'say "hi"', "back\\slash", "50%_off"]
    add(client, {"input": "Convert 3 km to metres.", "output": "3000 m", "tags": odd_tags})
    for tag in odd_tags:
        assert ids(tag=[tag]) == {"Convert 3 km to metres."}, tag
        exported = client.get("/v1/examples/export", params={"tag": tag}).text.splitlines()
        assert [json.loads(line)["input"] for line in exported] == ["Convert 3 km to metres."], tag
    assert ids(tag=["caf"]) == ids(tag=["say"]) == ids(tag=["50%"]) == set()  # whole tags, not parts
    assert ids(tag=["AREA"]) == ids(tag=["CAFÉ"]) == set()  # and exactly, as /v1/select's filter matches them
    # Text search folds case beyond ASCII on both banks (SQLite's own lower() folds ASCII only).
    add(client, {"input": "ÉCOLE: how many pupils fit in 4 rooms of 25?", "output": "100"})
    assert ids(q="école") == ids(q="ÉCOLE") == {"ÉCOLE: how many pupils fit in 4 rooms of 25?"}
    # A range that can hold nothing is a mistake to name, as /v1/select names it, not an empty page.
    for path in ("/v1/examples", "/v1/examples/export"):
        empty_range = client.get(path, params={"difficulty_min": 4, "difficulty_max": 2})
        assert empty_range.status_code == 422 and empty_range.json()["error"]["field"] == "difficulty_max"
