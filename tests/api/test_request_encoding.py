"""What a request's encoding may not hold, on SQLite and on PostgreSQL alike: a JSON body sent without saying
it is JSON (`curl -d` sends form encoding) is a 415 that says which header to send, not a puzzling "not an
object"; a NUL character anywhere in the path, a query parameter, a JSON body or an import line is a 422
naming where it was. On PostgreSQL such lookups used to answer 500 (it refuses NUL in text), and on SQLite
such writes were stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
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

NEW = {"input": "How many seconds are in 2.5 minutes?", "output": "150"}


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[TestClient]:
    with ExitStack() as stack:
        write_jsonl(tmp_path / "seed" / "seed.jsonl", SEED)
        database = {"database_url": stack.enter_context(fresh_database())} if request.param == "postgresql" else {}
        settings = Settings(
            data_dir=tmp_path / "data", index_dir=tmp_path / "indexes", seed_dir=tmp_path / "seed", **database
        )
        bank = SqlBank(settings.resolved_database_url())
        stack.callback(bank.close)
        service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
        yield stack.enter_context(TestClient(create_app(settings, service, start="now")))


def bank_state(client: TestClient) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = client.get("/v1/examples", params={"limit": 500}).json()["examples"]
    return examples


def some_id(client: TestClient) -> str:
    return str(bank_state(client)[0]["id"])


def refusal(response: Any, status: int = 422) -> tuple[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    return error["field"], error["message"]


# -- a JSON body must say it is JSON --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{"content-type": "application/x-www-form-urlencoded"}, {"content-type": "text/plain"}, {}],
    ids=["form, as curl -d sends", "text", "none"],
)
def test_a_body_not_sent_as_json_is_a_415_that_names_the_header(client: TestClient, headers: dict[str, str]) -> None:
    before = bank_state(client)
    for path, body in [("/v1/examples", NEW), ("/v1/select", {"prompt": "What is 2 + 2?"})]:
        field, message = refusal(client.post(path, content=json.dumps(body), headers=headers), 415)
        assert field == "content-type" and "Content-Type: application/json" in message
        assert (headers.get("content-type") or "no Content-Type") in message
    assert bank_state(client) == before


def test_json_with_a_charset_or_a_json_suffix_is_json(client: TestClient) -> None:
    prompt = json.dumps({"prompt": "What is 2 + 2?", "k": 1})
    for kind in ("application/json; charset=utf-8", "application/problem+json"):
        response = client.post("/v1/select", content=prompt, headers={"content-type": kind})
        assert response.status_code == 200, (kind, response.text)


@pytest.mark.parametrize("body", ["[1, 2]", '"a prompt"', "42"])
def test_a_json_body_that_is_not_an_object_is_named_as_such(client: TestClient, body: str) -> None:
    for path in ("/v1/select", "/v1/examples"):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert refusal(response) == ("body", "the body must be a JSON object")


# -- NUL characters -------------------------------------------------------------------------------------------
def test_a_nul_in_the_path_or_a_query_parameter_is_refused_naming_where(client: TestClient) -> None:
    example_id = some_id(client)
    cases = {
        "/v1/examples/a%00b": "path",
        "/v1/examples/a%00b/history": "path",
        "/v1/examples/a%00b/labels": "path",
        "/v1/examples?q=%00": "q",
        "/v1/examples?limit=5&topic=alge%00bra": "topic",
        "/v1/examples?cursor=x%00": "cursor",
        "/v1/examples/export?tag=%00": "tag",
        "/v1/preferences/next?annotator=ann%00": "annotator",
        f"/v1/review/next?annotator=ann&skip={example_id}%00": "skip",
    }
    for url, where in cases.items():
        field, message = refusal(client.get(url))
        assert field == where and "NUL" in message, url
    # "%2500" is a percent sign and two zeros, not a NUL.
    assert client.get("/v1/examples", params={"q": "%00"}).status_code == 200


def test_a_nul_anywhere_in_a_json_body_is_refused_naming_the_field_and_nothing_is_stored(client: TestClient) -> None:
    example_id = some_id(client)
    before = bank_state(client)
    nul = "\u0000"
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/v1/examples", {**NEW, "input": f"How many{nul} seconds?"}, "input"),
        ("POST", "/v1/examples", {"examples": [NEW, {**NEW, "input": "Other?", "tags": ["ok", nul]}]},
         "examples.1.tags.1"),
        ("POST", "/v1/examples", {**NEW, "metadata": {"origin": {"file": f"a{nul}"}}}, "metadata.origin.file"),
        ("POST", "/v1/examples", {**NEW, "metadata": {nul: 1}}, "metadata"),
        ("PATCH", f"/v1/examples/{example_id}", {"topic": nul}, "topic"),
        ("POST", f"/v1/examples/{example_id}/labels", {"verdict": "approve", "note": f"fine{nul}",
                                                       "annotator": "ann"}, "note"),
        ("POST", "/v1/preferences", {"prompt": "p", "response_a": nul, "response_b": "b"}, "response_a"),
        ("POST", "/v1/select", {"prompt": f"What is 2 + 2?{nul}"}, "prompt"),
        ("POST", "/v1/select", {"prompt": "What is 2 + 2?", "filters": {"topic": [nul]}}, "filters.topic.0"),
    ]  # fmt: skip
    for method, path, body, where in cases:
        field, message = refusal(client.request(method, path, json=body))
        assert (field, message) == (where, f"{where}: may not contain the NUL character (\\u0000)"), path
    assert bank_state(client) == before
    # A backslash followed by "u0000" is text like any other.
    stored = client.post("/v1/examples", json={**NEW, "input": "Escape it as \\u0000 in JSON?"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["examples"][0]["input"] == "Escape it as \\u0000 in JSON?"


def test_an_import_line_with_a_nul_is_reported_and_the_other_lines_are_kept(client: TestClient) -> None:
    lines = [{**NEW, "output": "150\u0000"}, {"input": "How many minutes are in 3 hours?", "output": "180"}]
    upload = "".join(json.dumps(line) + "\n" for line in lines)
    response = client.post("/v1/examples/import", content=upload, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == 1
    assert report["errors"] == [{"line": 1, "message": "output: may not contain the NUL character (\\u0000)"}]
    assert {e["input"] for e in bank_state(client)} == {e["input"] for e in SEED} | {lines[1]["input"]}
