"""Hostile input found by hand (issue 16): nulls in an edit, prompts BM25 cannot use, templates that pad to
gigabytes, and what an unexpected failure answers and logs. Each case used to end in a 500 (or a wrong 409,
or a 40 MB answer); each now gets a clear answer, and a refusal changes nothing."""

from __future__ import annotations

import gzip
import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank.importer import import_file
from fewshot_service.curation.types import ExampleQuery
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.errors import Conflict, EmbeddingError, InvalidInput
from fewshot_service.logs import JsonFormatter, RequestIdFilter
from fewshot_service.models import MAX_INPUT_CHARS, MAX_STEPS, ExampleCreate
from fewshot_service.serving.lifecycle import FewshotService

from ..keyed import bearer, keyed_service
from ..servers import live_server

CURATOR = bearer("curator")
READER = bearer("reader")


@pytest.fixture
def service(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[FewshotService]:
    service = keyed_service(tmp_path, embedder, rate_limit_per_second=0)
    yield service
    service.bank.close()


@pytest.fixture
def app(service: FewshotService) -> FastAPI:
    return create_app(service.settings, service, start="now")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def first_example(client: TestClient) -> dict[str, Any]:
    example: dict[str, Any] = client.get("/v1/examples", headers=CURATOR).json()["examples"][0]
    return example


# -- 1. PATCH with null: merge-patch semantics --------------------------------------------------------------
def test_null_clears_what_may_be_empty(client: TestClient) -> None:
    example = first_example(client)
    filled = {
        "topic": "t",
        "difficulty": 2,
        "steps": ["s"],
        "external_id": "ext-1",
        "tags": ["a"],
        "metadata": {"k": 1},
    }
    assert client.patch(f"/v1/examples/{example['id']}", json=filled, headers=CURATOR).status_code == 200
    cleared = dict.fromkeys(filled)
    answer = client.patch(f"/v1/examples/{example['id']}", json=cleared, headers=CURATOR)
    assert answer.status_code == 200, answer.text
    edited = answer.json()
    assert {name: edited[name] for name in filled} == {
        "topic": None, "difficulty": None, "steps": None, "external_id": None, "tags": [], "metadata": {},
    }  # fmt: skip
    assert client.get(f"/v1/examples/{example['id']}", headers=CURATOR).json() == edited


@pytest.mark.parametrize("field", ["input", "output", "status", "source"])
def test_null_for_a_field_every_example_has_is_refused_naming_it(client: TestClient, field: str) -> None:
    example = first_example(client)
    answer = client.patch(f"/v1/examples/{example['id']}", json={field: None}, headers=CURATOR)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == field and "null" in error["message"]
    assert client.get(f"/v1/examples/{example['id']}", headers=CURATOR).json() == example  # nothing changed


def test_the_schema_says_which_fields_may_be_null(app: FastAPI) -> None:
    update = app.openapi()["components"]["schemas"]["ExampleUpdate"]["properties"]
    for field in ("input", "output", "status", "source"):
        assert "null" not in json.dumps(update[field]), update[field]
    for field in ("topic", "difficulty", "steps", "external_id", "tags", "metadata"):
        assert "null" in json.dumps(update[field]), update[field]


def test_an_external_id_clash_is_still_named_as_one(client: TestClient) -> None:
    one, other = client.get("/v1/examples", headers=CURATOR).json()["examples"][:2]
    answer = client.patch(f"/v1/examples/{other['id']}", json={"external_id": one["external_id"]}, headers=CURATOR)
    assert answer.status_code == 409 and answer.json()["error"]["field"] == "external_id"
    assert one["external_id"] in answer.json()["error"]["message"]


def test_the_bank_names_the_constraint_a_write_broke(service: FewshotService) -> None:
    """Below the API's validation, the bank itself must not call every integrity error an external_id clash."""
    service.start()
    one, other = service.bank.list_examples(ExampleQuery(), None, 2)[0]
    with pytest.raises(InvalidInput) as refused:
        service.bank.update(one.id, {"output": None}, expected_version=None, actor="t")
    assert refused.value.field == "output" and "external_id" not in refused.value.message
    with pytest.raises(Conflict) as clash:
        service.bank.update(one.id, {"external_id": other.external_id}, expected_version=None, actor="t")
    assert clash.value.field == "external_id"
    text = "A question that is stored nowhere else."
    record = ExampleCreate.model_construct(**{**ExampleCreate(input=text).model_dump(), "output": None})
    with pytest.raises(InvalidInput) as on_insert:
        service.bank.insert([record], service.writes.embedder().embed([text]), "m", "t")
    assert on_insert.value.field == "output"
    assert service.bank.get(one.id) == one


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [33, 300])
def test_metadata_nested_too_deep_is_refused_and_nothing_is_stored(client: TestClient, depth: int) -> None:
    """300 levels used to be stored by PATCH and then fail to serialise: a 500, and every later read of the
    example a 500 too."""
    example = first_example(client)
    deep = nested(depth)
    question = '"input": "A new question about deep nesting?"'
    pair = '"prompt": "p", "response_a": "a", "response_b": "b"'
    bodies = {
        ("PATCH", f"/v1/examples/{example['id']}"): f'{{{question}, "metadata": {{"deep": {deep}}}}}',
        ("POST", "/v1/examples"): f'{{{question}, "metadata": {{"deep": {deep}}}}}',
        ("POST", "/v1/preferences"): f'{{{pair}, "metadata": {{"deep": {deep}}}}}',
    }
    for (method, path), body in bodies.items():
        answer = client.request(method, path, content=body, headers={**CURATOR, "content-type": "application/json"})
        assert answer.status_code == 422, (path, answer.text[:300])
        assert answer.json()["error"]["field"] == "metadata"
    assert client.get(f"/v1/examples/{example['id']}", headers=CURATOR).json() == example
    assert client.get("/v1/examples", params={"q": "deep nesting"}, headers=CURATOR).json()["examples"] == []


def test_metadata_nested_within_the_limit_is_kept(client: TestClient) -> None:
    example = first_example(client)
    metadata = {"deep": json.loads(nested(31))}
    answer = client.patch(f"/v1/examples/{example['id']}", json={"metadata": metadata}, headers=CURATOR)
    assert answer.status_code == 200 and answer.json()["metadata"] == metadata


def test_a_body_nested_past_what_the_parser_takes_is_refused_naming_the_body(client: TestClient) -> None:
    example = first_example(client)
    body = '{"metadata": ' + nested(5000) + "}"
    answer = client.patch(
        f"/v1/examples/{example['id']}", content=body, headers={**CURATOR, "content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json" and answer.json()["error"]["field"] == "body"


# -- 2. hybrid with a prompt BM25 cannot use -----------------------------------------------------------------
@pytest.mark.parametrize("prompt", ["the", "x", "a 1", "?!?!", "  é  "])
def test_hybrid_falls_back_to_dense_ranking_when_the_prompt_has_no_terms(client: TestClient, prompt: str) -> None:
    hybrid = client.post("/v1/select", json={"prompt": prompt, "strategy": "hybrid", "k": 3}, headers=READER)
    assert hybrid.status_code == 200, hybrid.text
    picked = hybrid.json()["examples"]
    assert len(picked) == 3
    assert all("dense ranking only" in example["why"]["reason"] for example in picked)
    knn = client.post("/v1/select", json={"prompt": prompt, "strategy": "knn", "k": 3}, headers=READER).json()
    assert [e["id"] for e in picked] == [e["id"] for e in knn["examples"]]  # the dense half, in its order


def test_hybrid_still_fuses_when_the_prompt_has_terms(client: TestClient) -> None:
    answer = client.post("/v1/select", json={"prompt": "probability of rolling a die", "strategy": "hybrid"},
                         headers=READER)  # fmt: skip
    assert answer.status_code == 200
    assert all("lexical rank" in example["why"]["reason"] for example in answer.json()["examples"])


# -- 3. templates that pad or repeat without bound ---------------------------------------------------------
def text_select(client: TestClient, template: str, **extra: Any) -> httpx.Response:
    body = {"prompt": "How fast does a cyclist ride?", "format": "text", "template": template, **extra}
    return client.post("/v1/select", json=body, headers=READER)


@pytest.mark.parametrize(
    "template",
    [
        "{input:>10000000000000}",  # was a MemoryError inside the validator
        "{input:>10000000}",  # was a 40 MB answer
        "{input:>99999999}",  # was 400 MB
        "{output:.100000}",
        "{input:x^0000000000000000000000000000000000000000000000000000000000000000000000000000000000000201}",
        "{input}" * 21,  # a field repeated past the placeholder limit
        "{input:>>>}",  # not a spec a string takes
    ],
)
def test_templates_that_pad_or_repeat_past_the_limits_are_refused(client: TestClient, template: str) -> None:
    answer = text_select(client, template)
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["error"]["field"] == "template"
    assert len(answer.content) < 1000


def test_templates_within_the_limits_render(client: TestClient) -> None:
    answer = text_select(client, "{input!r:>200.150}|{output:_<200}|" + "{steps}" * 18, k=2)
    assert answer.status_code == 200, answer.text[:300]
    first = answer.json()["text"].split("|")[0]
    assert len(first) == 200 and first.startswith(" ") and first.strip().startswith("'")


def test_an_answer_whose_text_would_pass_two_megabytes_is_refused(client: TestClient) -> None:
    steps = [("long step " * 800)[:MAX_INPUT_CHARS]] * MAX_STEPS  # 512 KB of steps in one example
    created = client.post(
        "/v1/examples",
        json={"input": "Quokkas per heron in the Zanzibar riddle?", "output": "7", "steps": steps,
              "status": "approved", "topic": "riddles"},
        headers=CURATOR,
    )  # fmt: skip
    assert created.status_code == 201, created.text[:300]
    # Another prompt: the leakage guard keeps an example out of a prompt that is its own question.
    body = {"prompt": "A riddle about animals", "k": 1, "filters": {"topics": ["riddles"]}}
    one_copy = text_select(client, "{steps}", **body)
    assert one_copy.status_code == 200 and len(one_copy.json()["text"]) > 500_000
    five_copies = text_select(client, "{steps}" * 5, **body)  # 2.56 MB
    assert five_copies.status_code == 422, five_copies.text[:300]
    assert five_copies.json()["error"]["field"] == "template" and len(five_copies.content) < 1000


# -- 4. JSON true or false where a number goes -------------------------------------------------------------
ADMIN = bearer("admin")
NEW_INPUT = "How many legs do three spiders have?"
# (method, path, body, the field the refusal names); "{id}" is a stored example's id. Pydantic's lax mode
# read true as 1 in each of these: "difficulty": true stored difficulty 1, "k": true selected one example.
BOOLEAN_NUMBERS = [
    ("POST", "/v1/examples", {"input": NEW_INPUT, "difficulty": "?"}, "difficulty"),
    ("PATCH", "/v1/examples/{id}", {"difficulty": "?"}, "difficulty"),
    ("PATCH", "/v1/examples/{id}", {"topic": "edited", "version": "?"}, "version"),
    ("POST", "/v1/examples/{id}/labels", {"verdict": "approve", "score": "?"}, "score"),
    ("POST", "/v1/examples/{id}/labels", {"verdict": "needs_fix", "first_wrong_step": "?"}, "first_wrong_step"),
    ("POST", "/v1/select", {"prompt": "a die", "k": "?"}, "k"),
    ("POST", "/v1/select", {"prompt": "a die", "difficulty_target": "?"}, "difficulty_target"),
    ("POST", "/v1/select", {"prompt": "a die", "max_tokens": "?"}, "max_tokens"),
    ("POST", "/v1/select", {"prompt": "a die", "strategy": "random", "seed": "?"}, "seed"),
    ("POST", "/v1/select", {"prompt": "a die", "filters": {"difficulty_max": "?"}}, "filters.difficulty_max"),
    ("POST", "/v1/admin/keys", {"name": "svc", "role": "reader", "rate_per_second": "?"}, "rate_per_second"),
]


def with_value(body: dict[str, Any], value: Any) -> dict[str, Any]:
    return {k: with_value(v, value) if isinstance(v, dict) else value if v == "?" else v for k, v in body.items()}


def bank_state(client: TestClient) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = client.get("/v1/examples?limit=500", headers=CURATOR).json()["examples"]
    labels = [client.get(f"/v1/examples/{e['id']}/labels", headers=CURATOR).json() for e in examples]
    return [*examples, *labels, client.get("/v1/admin/keys", headers=ADMIN).json()]


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize(("method", "path", "body", "field"), BOOLEAN_NUMBERS, ids=lambda x: str(x)[:40])
def test_true_or_false_where_a_number_goes_is_refused_naming_the_field(
    client: TestClient, method: str, path: str, body: dict[str, Any], field: str, value: bool
) -> None:
    before = bank_state(client)
    url = path.format(id=before[0]["id"])
    answer = client.request(method, url, json=with_value(body, value), headers=ADMIN)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == field, error
    assert "valid integer" in error["message"] or "valid number" in error["message"], error
    assert bank_state(client) == before  # nothing stored or changed


@pytest.mark.parametrize(("method", "path", "body", "field"), BOOLEAN_NUMBERS, ids=lambda x: str(x)[:40])
def test_the_same_fields_take_numbers(
    client: TestClient, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    """The refusal is of booleans only: a number (3, or 3.0 for an integer, as lax JSON clients send) is taken."""
    examples = client.get("/v1/examples", headers=CURATOR).json()["examples"]
    url = path.format(id=next(e["id"] for e in examples if e["steps"]))  # first_wrong_step needs a step
    value: Any = {"first_wrong_step": 0, "version": 1, "k": 3.0}.get(field, 3)
    answer = client.request(method, url, json=with_value(body, value), headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text
    if field == "k":
        assert len(answer.json()["examples"]) == 3


def test_an_import_line_with_a_boolean_quality_is_reported_and_the_other_lines_are_kept(client: TestClient) -> None:
    lines = [
        {"id": "bool-quality", "input": "What is seven times six?", "output": "42", "quality": True},
        {"id": "bool-version", "input": "What is nine times nine?", "output": "81", "version": False},
        {"id": "fine", "input": "What is eight times eight?", "output": "64", "quality": 4.5, "version": 2},
    ]
    upload = "\n".join(json.dumps(line) for line in lines)
    answer = client.post("/v1/examples/import?mode=restore", content=upload,
                         headers={**ADMIN, "content-type": "application/x-ndjson"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["created"] == 1
    assert [(e["line"], e["message"].split(":")[0]) for e in report["errors"]] == [(1, "quality"), (2, "version")]
    assert client.get("/v1/examples/bool-quality", headers=CURATOR).status_code == 404
    stored = client.get("/v1/examples/fine", headers=CURATOR).json()
    assert (stored["quality"], stored["version"]) == (4.5, 2)


# -- 5. an input or prompt that shows nothing --------------------------------------------------------------
INVISIBLE = ["\u200b", "\u200b\u200d\u2060", "\ufeff", "\u00ad", "\x01\x02", " \u200e\u202a ", "\u3000\u200b"]


@pytest.mark.parametrize("text", INVISIBLE, ids=lambda t: t.encode("unicode_escape").decode())
def test_an_invisible_input_or_prompt_is_refused_naming_it(client: TestClient, text: str) -> None:
    """Zero-width spaces, joiners, marks and controls alone were stored as an example nobody could see (and
    embedded, and selected), while "   " was refused."""
    before = bank_state(client)
    example = first_example(client)
    answers = [
        ("input", client.post("/v1/examples", json={"input": text, "output": "4"}, headers=CURATOR)),
        ("examples.0.input", client.post("/v1/examples", json={"examples": [{"input": text}]}, headers=CURATOR)),
        ("input", client.patch(f"/v1/examples/{example['id']}", json={"input": text}, headers=CURATOR)),
        ("prompt", client.post("/v1/select", json={"prompt": text}, headers=READER)),
        ("response_b", client.post("/v1/preferences", json={"prompt": "2+2?", "response_a": "4", "response_b": text},
                                   headers=CURATOR)),
        # an admin acting for an annotator whose name shows nothing
        ("annotator", client.post(f"/v1/examples/{example['id']}/labels",
                                  json={"annotator": text, "verdict": "approve"}, headers=ADMIN)),
        ("annotator", client.get("/v1/review/next", params={"annotator": text}, headers=ADMIN)),
    ]  # fmt: skip
    for field, answer in answers:
        assert answer.status_code == 422, (field, answer.text)
        error = answer.json()["error"]
        assert error["field"] == field and "visible character" in error["message"], error
    upload = json.dumps({"input": text, "output": "4"}) + "\n" + json.dumps({"input": "Is 7 prime?", "output": "yes"})
    report = client.post("/v1/examples/import", content=upload,
                         headers={**CURATOR, "content-type": "application/x-ndjson"}).json()  # fmt: skip
    assert report["created"] == 1 and [e["line"] for e in report["errors"]] == [1], report
    assert "visible character" in report["errors"][0]["message"]
    after = bank_state(client)
    assert len(after) == len(before) + 2  # the one good import line and its (empty) labels, nothing else
    assert [e for e in after if isinstance(e, dict) and e.get("input") == text] == []
    assert client.get("/v1/preferences/next?annotator=cara", headers=CURATOR).status_code == 204  # none stored


def test_text_with_a_visible_character_among_invisible_ones_is_kept(client: TestClient) -> None:
    text = "\u200bWhat is 6 \u00d7 7?\u200d"
    answer = client.post("/v1/examples", json={"input": text, "output": "42"}, headers=CURATOR)
    assert answer.status_code == 201 and answer.json()["examples"][0]["input"] == text
    assert client.post("/v1/select", json={"prompt": "\u200b\u0645"}, headers=READER).status_code == 200


def test_an_invisible_input_stored_before_the_rule_stays_readable(
    client: TestClient, service: FewshotService, tmp_path: Path
) -> None:
    """The rule is for what callers send: a bank that already holds such an input lists, exports and edits it."""
    example = first_example(client)
    with service.bank.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE examples SET input = ? WHERE id = ?", ("\u200b", example["id"]))
    assert client.get(f"/v1/examples/{example['id']}", headers=CURATOR).json()["input"] == "\u200b"
    assert client.get("/v1/examples?limit=500", headers=CURATOR).status_code == 200
    exported = client.get("/v1/examples/export", headers=CURATOR)
    assert exported.status_code == 200
    [line] = [line for line in exported.text.splitlines() if json.loads(line)["id"] == example["id"]]
    # ... and its export reads back in a restore (an admin's, and the CLI's), though a curated import refuses it
    ndjson = {"content-type": "application/x-ndjson"}
    curated = client.post("/v1/examples/import", content=line, headers={**CURATOR, **ndjson})
    assert curated.status_code == 422 and "visible character" in curated.json()["error"]["errors"][0]["message"]
    restored = client.post("/v1/examples/import?mode=restore", content=line, headers={**ADMIN, **ndjson}).json()
    assert restored["errors"] == [] and restored["imported"] == 1, restored
    (tmp_path / "export.jsonl").write_text(line + "\n")
    assert import_file(service.bank, tmp_path / "export.jsonl").line_errors == []
    assert client.get(f"/v1/examples/{example['id']}", headers=CURATOR).json()["input"] == "\u200b"
    mended = client.patch(f"/v1/examples/{example['id']}", json={"input": "What is 2 + 2?"}, headers=CURATOR)
    assert mended.status_code == 200 and mended.json()["input"] == "What is 2 + 2?"


# -- 8. an unexpected failure: one log entry, the request id in the answer -----------------------------------
def add_failing_routes(app: FastAPI) -> None:
    def unexpected() -> None:
        raise RuntimeError("a bug the handlers do not know")

    def embedding_failed() -> None:
        raise EmbeddingError("the model failed")

    app.add_api_route("/test/unexpected", unexpected, include_in_schema=False)
    app.add_api_route("/test/embedding-failed", embedding_failed, include_in_schema=False)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the process, through the formatter `fewshot serve` uses (uvicorn's added later)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger("uvicorn").removeHandler(handler)


def tracebacks(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, stream.getvalue().splitlines()) if "exc" in line]


@pytest.mark.parametrize("path", ["/test/unexpected", "/test/embedding-failed"])
def test_a_500_carries_its_request_id_and_is_logged_once_with_it(
    app: FastAPI, captured: io.StringIO, path: str
) -> None:
    add_failing_routes(app)
    with TestClient(app) as client:  # raise_server_exceptions: an exception escaping the app fails here
        given = client.get(path, headers={"X-Request-ID": "trace-500.a"})
        made = client.get(path)
    for answer in (given, made):
        assert answer.status_code == 500
        assert answer.json()["error"]["request_id"] == answer.headers["X-Request-ID"]
    assert given.headers["X-Request-ID"] == "trace-500.a"
    logged = tracebacks(captured)
    assert [line["request_id"] for line in logged] == ["trace-500.a", made.headers["X-Request-ID"]]


def test_a_live_server_logs_an_unexpected_failure_once(app: FastAPI, captured: io.StringIO) -> None:
    """Through uvicorn: an exception escaping the app used to be logged a second time, without the id."""
    add_failing_routes(app)
    with live_server(app) as url:
        logging.getLogger("uvicorn").addHandler(captured_handler(captured))
        answer = httpx.get(f"{url}/test/unexpected", headers={"X-Request-ID": "live-500"}, timeout=30)
    assert answer.status_code == 500 and answer.json()["error"]["request_id"] == "live-500"
    assert answer.headers["X-Request-ID"] == "live-500"
    logged = tracebacks(captured)
    assert len(logged) == 1 and logged[0]["request_id"] == "live-500"


def captured_handler(stream: io.StringIO) -> logging.Handler:
    return next(h for h in logging.getLogger().handlers if getattr(h, "stream", None) is stream)


# -- 9. HTTP's own rules: HEAD, 405's Allow, a trailing slash, content codings, a client that leaves ----------
def test_head_is_answered_wherever_get_is_without_a_body(app: FastAPI) -> None:
    """Load balancers and uptime checks probe with HEAD; it was a 405 everywhere. Through uvicorn, so the
    server's own handling of HEAD is part of what is checked."""
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        example_id = http.get("/v1/examples", headers=CURATOR).json()["examples"][0]["id"]
        for path, headers in [("/healthz", {}), ("/readyz", {}), ("/metrics", {}), ("/v1/examples", CURATOR),
                              (f"/v1/examples/{example_id}", CURATOR), ("/v1/examples/nope", CURATOR),
                              ("/v1/examples", {})]:  # fmt: skip
            got, head = http.get(path, headers=headers), http.head(path, headers=headers)
            assert head.status_code == got.status_code, path
            assert head.content == b"" and int(head.headers["content-length"]) == len(got.content) > 0, path
            assert head.headers["content-type"] == got.headers["content-type"], path
        assert http.head(f"/v1/examples/{example_id}", headers=CURATOR).headers["etag"] == '"1"'
        assert http.head("/v1/select", headers=READER).status_code == 405  # a POST route has no HEAD
        # counted as HEAD, under the route's template like any other request
        metrics = http.get("/metrics", headers=ADMIN).text
        for route in ("/healthz", "/v1/examples/{example_id}"):
            assert f'fewshot_http_requests_total{{method="HEAD",route="{route}",status="200"}}' in metrics, route


def test_a_method_a_path_does_not_answer_is_a_405_listing_those_it_does(client: TestClient) -> None:
    """RFC 9110 requires Allow on a 405; there was none, and Starlette would have named only the first route
    of a path (GET /v1/examples, not its POST)."""
    for method, path, allowed in [("PUT", "/v1/examples", "GET, HEAD, POST"), ("DELETE", "/v1/select", "POST"),
                                  ("POST", "/v1/examples/abc", "DELETE, GET, HEAD, PATCH"),
                                  ("OPTIONS", "/healthz", "GET, HEAD")]:  # fmt: skip
        answer = client.request(method, path, headers=ADMIN)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allowed, (method, path)
        assert answer.json()["error"] == {
            "code": "method_not_allowed", "field": None,
            "message": f"{method} is not allowed on {path}; it answers {allowed}",
        }  # fmt: skip


def test_a_trailing_slash_is_a_404_naming_the_route(client: TestClient) -> None:
    """It was a 307 with an empty body, which clients that do not follow a POST's redirect showed as a bare
    status."""
    example_id = first_example(client)["id"]
    for method, path in [("POST", "/v1/select/"), ("GET", "/v1/examples/"), ("GET", f"/v1/examples/{example_id}/")]:
        answer = client.request(method, path, json={"prompt": "2 + 2?"}, headers=ADMIN, follow_redirects=False)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["message"] == f"no route at {path}; the route is {path.rstrip('/')}"
    assert client.get("/nowhere/", headers=ADMIN).json()["error"]["message"] == "Not Found"
    assert client.get("/ui", follow_redirects=False).status_code == 308  # the workbench's own redirect stays


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, identity"])
def test_a_body_in_a_content_coding_is_refused_naming_the_header(client: TestClient, coding: str) -> None:
    """A gzip body was read as "not valid JSON", and a plain body labelled br was taken."""
    before = bank_state(client)
    body = json.dumps({"input": "What is 12 x 12?", "output": "144"}).encode()
    sent = gzip.compress(body) if coding == "gzip" else body
    json_type = {"content-type": "application/json", "content-encoding": coding}
    ndjson = {**json_type, "content-type": "application/x-ndjson"}
    for path, headers in [("/v1/examples", {**CURATOR, **json_type}), ("/v1/select", {**READER, **json_type}),
                          ("/v1/examples/import", {**CURATOR, **ndjson})]:  # fmt: skip
        answer = client.post(path, content=sent, headers=headers)
        assert answer.status_code == 415, (path, answer.text)
        error = answer.json()["error"]
        assert error["field"] == "content-encoding" and repr(coding) in error["message"]
        assert answer.headers["accept-encoding"] == "identity"
    assert bank_state(client) == before
    long_coding = {**READER, "content-type": "application/json", "content-encoding": "x" * 5000}
    refused = client.post("/v1/select", content=body, headers=long_coding).json()["error"]["message"]
    assert len(refused) < 250 and "'" + "x" * 64 + "...'" in refused  # named, not echoed whole
    plain = client.post("/v1/select", json={"prompt": "2 + 2?"}, headers={**READER, "content-encoding": "identity"})
    assert plain.status_code == 200


def test_an_upload_cut_short_by_its_client_is_not_a_server_error(app: FastAPI, captured: io.StringIO) -> None:
    """An import whose client went away mid-body (its file vanished, the process died) answered 500 and
    logged a traceback: the client's departure counted as the server's failure."""
    with live_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as raw:
            line = json.dumps({"input": "Is 91 prime?", "output": "no, 7 x 13"}).encode() + b"\n"
            raw.sendall(
                b"POST /v1/examples/import HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                + f"Authorization: {CURATOR['Authorization']}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                + f"{len(line):x}\r\n".encode()
                + line
                + b"\r\n"
            )
            time.sleep(0.5)  # the server has read the first line when the client goes away
        counted = 'fewshot_http_requests_total{method="POST",route="/v1/examples/import",status='
        deadline, metrics = time.monotonic() + 20, ""
        while time.monotonic() < deadline and counted not in metrics:
            time.sleep(0.1)
            metrics = httpx.get(f"{url}/metrics", headers=ADMIN, timeout=30).text
    assert f'{counted}"400"}} 1.0' in metrics and f'{counted}"500"' not in metrics
    assert tracebacks(captured) == []


def test_a_restored_example_cannot_take_the_id_of_a_route(client: TestClient) -> None:
    """An example restored as "export" was stored, and GET /v1/examples/export then served the export."""
    lines = "\n".join(
        json.dumps({"id": i, "input": f"Which route is {i}?", "output": i}) for i in ("export", "import", "exports")
    )
    answer = client.post("/v1/examples/import?mode=restore", content=lines,
                         headers={**ADMIN, "content-type": "application/x-ndjson"})  # fmt: skip
    report = answer.json()
    assert report["created"] == 1 and [e["line"] for e in report["errors"]] == [1, 2], report
    assert (
        report["errors"][0]["message"]
        == "id: 'export' names the route /v1/examples/export; an example needs another id"
    )
    assert client.get("/v1/examples/exports", headers=CURATOR).json()["output"] == "exports"


# -- 10. messages that name the real problem ----------------------------------------------------------------
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_as_not_finite(client: TestClient, number: str) -> None:
    """Python's JSON reader takes NaN and Infinity; they were refused by a bound ("less than or equal to 1"),
    which named the wrong problem."""
    json_body = {"content-type": "application/json"}
    for field, body in [
        ("diversity", f'{{"prompt": "2 + 2?", "diversity": {number}}}'),
        ("topic_preference", f'{{"prompt": "2 + 2?", "topic_preference": {number}}}'),
        ("utility_weight", f'{{"prompt": "2 + 2?", "utility_weight": {number}}}'),
        ("filters.min_quality", f'{{"prompt": "2 + 2?", "filters": {{"min_quality": {number}}}}}'),
    ]:
        answer = client.post("/v1/select", content=body, headers={**READER, **json_body})
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["error"] == {
            "code": "invalid_input", "field": field, "message": f"{field}: Input should be a finite number"
        }  # fmt: skip
    line = f'{{"id": "nan-quality", "input": "Is 2 prime?", "output": "yes", "quality": {number}}}'
    report = client.post("/v1/examples/import?mode=restore", content=line,
                         headers={**ADMIN, "content-type": "application/x-ndjson"})  # fmt: skip
    assert report.json()["error"]["errors"] == [{"line": 1, "message": "quality: Input should be a finite number"}]


@pytest.mark.parametrize("outcome", ["1.5", "-0.1", '"1"', "true", "NaN", '"ok"'])
def test_a_wrong_outcome_is_told_what_an_outcome_is(client: TestClient, outcome: str) -> None:
    """It was "Input should be 'success' or 'failure' (and 1 more problem(s))", even for 1.5."""
    body = f'{{"selection_id": "s1", "outcome": {outcome}}}'
    answer = client.post("/v1/feedback", content=body, headers={**READER, "content-type": "application/json"})
    assert answer.status_code == 422
    given = json.dumps(json.loads(outcome))
    assert answer.json()["error"] == {
        "code": "invalid_input", "field": "outcome",
        "message": f'outcome: must be "success", "failure" or a number from 0 to 1, not {given}',
    }  # fmt: skip


def test_an_empty_filter_list_or_strategy_is_refused_not_read_as_nothing_or_the_default(client: TestClient) -> None:
    """`"topics": []` answered no examples without saying why (an empty statuses list was already refused),
    and `"strategy": ""` silently meant the default."""
    for filters, field in [({"topics": []}, "filters.topics"), ({"sources": []}, "filters.sources"),
                           ({"tags": []}, "filters.tags"), ({"statuses": []}, "filters.statuses")]:  # fmt: skip
        answer = client.post("/v1/select", json={"prompt": "2 + 2?", "filters": filters}, headers=READER)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.text
    empty = client.post("/v1/select", json={"prompt": "2 + 2?", "strategy": ""}, headers=READER)
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "strategy"
    assert "unknown strategy ''" in empty.json()["error"]["message"]
    assert client.post("/v1/select", json={"prompt": "2 + 2?", "strategy": None}, headers=READER).status_code == 200
