"""fewshot_service.client against a real `fewshot serve`: every method, typed errors, retries on 429."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import pytest

from fewshot_service.client import (
    AsyncFewshotClient,
    Conflict,
    FewshotAPIError,
    FewshotClient,
    Forbidden,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    ValidationFailed,
)
from fewshot_service.curation.types import ExampleUpdate
from fewshot_service.models import ExampleCreate, LabelCreate, PartialSelectResponse, SelectResponse

from ..helpers import REPO
from ..keyed import KEY_OF
from .llm_stub import stub_llm
from .served import fewshot_serve

PROMPT = "Maria buys 3 notebooks at $4 each and a pen for $2. How much does she spend?"


@pytest.fixture(scope="module")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client")


@pytest.fixture(scope="module")
def url(server_root: Path) -> Iterator[str]:
    with fewshot_serve(server_root) as base_url:
        yield base_url


@pytest.fixture
def curator(url: str) -> Iterator[FewshotClient]:
    with FewshotClient(url, KEY_OF["curator"]) as client:
        yield client


def test_select_returns_the_services_typed_answer(url: str, curator: FewshotClient) -> None:
    raw = httpx.post(
        f"{url}/v1/select",
        json={"prompt": PROMPT, "k": 3, "strategy": "knn"},
        headers={"Authorization": f"Bearer {KEY_OF['reader']}"},
    ).json()
    with FewshotClient(url, KEY_OF["reader"]) as reader:
        answer = reader.select(PROMPT, k=3, strategy="knn")
        assert isinstance(answer, SelectResponse)
        assert [e.id for e in answer.examples] == [e["id"] for e in raw["examples"]]
        chat = reader.select(PROMPT, k=2, format="messages", filters={"difficulty_max": 5})
        assert chat.messages is not None and [m.role for m in chat.messages] == ["user", "assistant"] * 2
        # fields: a PartialSelectResponse holding only what was asked for (and the id)
        cut = reader.select(PROMPT, k=3, strategy="knn", fields=["input", "output"])
        assert isinstance(cut, PartialSelectResponse)
        assert [(e.id, e.input, e.output) for e in cut.examples] == [(e.id, e.input, e.output) for e in answer.examples]
        assert all(e.model_fields_set == {"id", "input", "output"} for e in cut.examples)
        with pytest.raises(ValidationFailed) as refused:
            reader.select(PROMPT, fields="input")  # type: ignore[call-overload]  # a string, not a list of names
        assert refused.value.field == "fields"


def test_add_get_edit_label_history_delete(curator: FewshotClient) -> None:
    added = curator.add(ExampleCreate(input="What is 17 + 25?", output="42", topic="arithmetic", difficulty=1))
    assert added.status == "pending" and curator.get(added.id) == added
    edited = curator.edit(added.id, ExampleUpdate(output="42.", difficulty=None), version=added.version)
    assert edited.output == "42." and edited.difficulty is None and edited.version == added.version + 1
    with pytest.raises(Conflict) as stale:
        curator.edit(added.id, {"output": "41"}, version=added.version)
    assert stale.value.status == 409 and curator.get(added.id).output == "42."
    twin = curator.add({"input": "Name the largest planet of the solar system.", "output": "Jupiter"})
    with pytest.raises(Conflict) as duplicate:
        curator.edit(twin.id, {"input": "what is 17 + 25?"})  # another example's input, read the same
    assert duplicate.value.code == "duplicate" and duplicate.value.field == "input"
    assert curator.edit(twin.id, {"input": "What is 17 + 25 ?"}, on_duplicate="keep").version == 2
    result = curator.label(added.id, LabelCreate(annotator="cara", verdict="approve", score=5))
    assert result.label.example_id == added.id
    assert [label.id for label in curator.labels(added.id)] == [result.label.id]
    assert result.example.status == "approved"
    curator.withdraw_label(added.id, result.label.id)  # undo: kept in the record, status recomputed
    assert curator.get(added.id).status == "pending" and curator.labels(added.id)[0].withdrawn_at is not None
    assert [entry.action for entry in curator.history(added.id)][:2] == ["create", "update"]
    curator.delete(added.id)
    with pytest.raises(NotFound) as gone:
        curator.get(added.id)
    assert gone.value.code == "not_found" and gone.value.request_id


def test_add_many_list_and_iterate_follow_the_cursor(curator: FewshotClient) -> None:
    animals = ["spiders", "a horse and a duck", "ants in a colony of twelve", "octopus arms", "a tripod stool"]
    batch = [{"input": f"How many legs: {animal}?", "tags": ["legs"]} for animal in animals]
    created = curator.add_many(batch, on_duplicate="keep")
    assert len(created.examples) == 5
    first = curator.list_examples(tag=["legs"], limit=2)
    assert len(first.examples) == 2 and first.next_cursor
    walked = [example.id for example in curator.iter_examples(tag=["legs"], page_size=2)]
    assert sorted(walked) == sorted(e.id for e in created.examples)
    skipped = curator.add_many([batch[0]], on_duplicate="skip")
    assert skipped.examples == [] and skipped.skipped == [0]


def test_export_streams_and_import_takes_bytes_files_and_records(curator: FewshotClient, tmp_path: Path) -> None:
    words = ["Spell seven in French.", "Why is the sky blue?", "Name a prime between 20 and 30."]
    curator.add_many([{"input": w, "output": f"n{n}", "tags": ["spell"]} for n, w in enumerate(words)])
    exported = list(curator.export(tag=["spell"]))
    assert sorted(r.output for r in exported) == ["n0", "n1", "n2"]
    topics = ["a haiku about rain", "the boiling point of water", "a pangram", "the capital of Peru"]
    lines = [{"external_id": f"imp-{n}", "input": f"Import me: {t}", "output": str(n)} for n, t in enumerate(topics)]
    assert curator.import_jsonl(json.dumps(lines[0]).encode() + b"\n")["imported"] == 1
    path = tmp_path / "up.jsonl"
    path.write_text(json.dumps(lines[1]) + "\n" + "not json\n")
    report = curator.import_jsonl(path)
    assert report["imported"] == 1 and report["errors"][0]["line"] == 2
    assert curator.import_jsonl(iter(lines[2:]))["imported"] == 2
    assert {e.external_id for e in curator.iter_examples(q="Import me")} == {f"imp-{n}" for n in range(4)}


def test_review_queue_preferences_stats_and_ready(curator: FewshotClient) -> None:
    curator.add({"input": "Is 91 prime?", "output": "No, 7 x 13", "source": "llm"})
    item = curator.review_next()  # the key's name is the annotator
    assert item is not None and item.example.status == "pending"
    curator.release(item.example.id)  # skipped: back in the queue, and not offered again when skipped
    again = curator.review_next(skip=[item.example.id])
    assert again is None or again.example.id != item.example.id
    pair = curator.add_preference({"prompt": "2+2?", "response_a": "4", "response_b": "5"})
    chosen = curator.label_preference(pair.id, {"annotator": "cara", "choice": "a", "shown_first": "b"})
    assert chosen.preference_id == pair.id
    assert curator.stats()["total"] >= 1
    assert {"annotators", "position_bias"} <= set(curator.agreement())
    assert curator.ready()["status"] == "ready"


def test_an_application_reports_the_outcome_of_a_selection(url: str) -> None:
    with FewshotClient(url, KEY_OF["reader"]) as reader:
        answer = reader.select(PROMPT, k=2)
        assert answer.selection_id is not None
        receipt = reader.feedback(answer.selection_id, "success")
        assert receipt.selection_id == answer.selection_id and receipt.outcome == 1.0
        assert reader.feedback(answer.selection_id, 0.25, note="graded").outcome == 0.25  # replaces it
        with pytest.raises(NotFound):
            reader.feedback("no-such-selection", "failure")
        with pytest.raises(ValidationFailed) as bad:
            reader.feedback(answer.selection_id, 2)
        assert bad.value.field == "outcome"


def test_errors_are_typed_and_carry_code_field_and_request_id(url: str, curator: FewshotClient) -> None:
    with FewshotClient(url, api_key="") as anonymous, pytest.raises(Unauthorized) as no_key:
        anonymous.select(PROMPT)
    assert no_key.value.status == 401 and no_key.value.code == "unauthorized"
    with FewshotClient(url, KEY_OF["reader"]) as reader, pytest.raises(Forbidden) as low_role:
        reader.add({"input": "x"})
    assert low_role.value.code == "forbidden"
    with pytest.raises(ValidationFailed) as bad:
        curator.select(PROMPT, k=0)
    assert bad.value.field == "k" and bad.value.code == "invalid_input" and len(bad.value.request_id or "") > 8
    curator.add({"input": "Unique question about owls?", "external_id": "owl-1"})
    with pytest.raises(Conflict) as duplicate:
        curator.add({"input": "Unique question about owls?", "external_id": "owl-2"})
    assert duplicate.value.details  # the duplicates found, as the server listed them


def test_the_key_comes_from_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_API_KEY", KEY_OF["reader"])
    monkeypatch.setenv("FEWSHOT_URL", url)
    with FewshotClient() as client:
        assert len(client.select(PROMPT, k=2).examples) == 2


def test_async_client_selects_adds_and_iterates(url: str) -> None:
    async def run() -> None:
        async with AsyncFewshotClient(url, KEY_OF["curator"]) as client:
            answer = await client.select(PROMPT, k=2)
            assert len(answer.examples) == 2
            added = await client.add({"input": "Async: what is 6 x 7?", "output": "42", "tags": ["async"]})
            assert (await client.get(added.id)).input == added.input
            assert [e.id async for e in client.iter_examples(tag=["async"], page_size=1)] == [added.id]
            assert [r.id async for r in client.export(tag=["async"])] == [added.id]
            report = await client.import_jsonl([{"input": "Async import?", "tags": ["async"]}])
            assert report["imported"] == 1
            with pytest.raises(NotFound):
                await client.get("missing")
            edited = await client.edit(added.id, {"output": "42 (6 x 7)"}, version=added.version)
            assert edited.version == added.version + 1
            labelled = await client.label(added.id, {"verdict": "approve", "score": 4})
            assert [label.id for label in await client.labels(added.id)] == [labelled.label.id]
            assert [entry.action for entry in await client.history(added.id)][:2] == ["create", "update"]
            many = await client.add_many([{"input": "Async batch: name a mammal that flies.", "tags": ["async"]}])
            page = await client.list_examples(tag=["async"], limit=10)
            assert {e.id for e in many.examples} <= {e.id for e in page.examples}
            await client.delete(added.id)
            with pytest.raises(NotFound):
                await client.get(added.id)
            pair = await client.add_preference({"prompt": "1+1?", "response_a": "2", "response_b": "3"})
            await client.label_preference(pair.id, {"choice": "a", "shown_first": "a"})
            item = await client.review_next("cara")
            assert item is None or item.example.status == "pending"
            assert (await client.stats())["total"] >= 1 and "annotators" in await client.agreement()
            assert (await client.ready())["status"] == "ready"

    asyncio.run(run())


def test_a_429_is_waited_out_per_retry_after_and_raised_when_retries_are_off(tmp_path: Path) -> None:
    with fewshot_serve(tmp_path, rate_limit_per_second="1", rate_limit_burst="1") as limited_url:
        quick = RetryPolicy(max_attempts=1)
        with FewshotClient(limited_url, KEY_OF["reader"], retry=quick) as once:
            once.select(PROMPT, k=1)
            with pytest.raises(RateLimited) as limited:
                once.select(PROMPT, k=1)
            assert limited.value.code == "rate_limited"
        with FewshotClient(limited_url, KEY_OF["reader"]) as patient:
            patient.select(PROMPT, k=1)
            assert len(patient.select(PROMPT, k=1).examples) == 1  # refused once, retried after Retry-After


def test_the_readme_openai_example_puts_the_shots_between_system_and_user(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai = pytest.importorskip("openai", reason="the README example uses the openai package")
    readme = (REPO / "README.md").read_text().split("**OpenAI-style chat.**", 1)[1]
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None and len(code.group(1).strip().splitlines()) == 5
    with stub_llm("ok") as llm:
        monkeypatch.setenv("FEWSHOT_URL", url)
        monkeypatch.setenv("FEWSHOT_API_KEY", KEY_OF["reader"])
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "not-used")
        exec(code.group(1), {"FewshotClient": FewshotClient, "OpenAI": openai.OpenAI})
    sent = llm.requests[0]["messages"]
    question = sent[-1]["content"]
    shots = FewshotClient(url, KEY_OF["reader"]).select(question, k=4, format="messages").messages or []
    assert sent[0]["role"] == "system" and sent[-1]["role"] == "user"
    assert sent[1:-1] == [turn.model_dump() for turn in shots] and len(shots) == 8


def test_an_id_is_one_path_segment_and_never_reaches_another_route(url: str, curator: FewshotClient) -> None:
    admin_headers = {"Authorization": f"Bearer {KEY_OF['admin']}"}
    made = httpx.post(f"{url}/v1/admin/keys", json={"name": "id-probe", "role": "reader"}, headers=admin_headers)
    assert made.status_code == 201
    with FewshotClient(url, KEY_OF["admin"]) as admin, pytest.raises(ValidationFailed) as refused:
        admin.delete(f"../admin/keys/{made.json()['id']}")  # revoked the key before
    assert refused.value.field == "example_id"
    with FewshotClient(url, made.json()["key"]) as prober:
        assert len(prober.select(PROMPT, k=1).examples) == 1  # the key still works
    added = curator.add({"input": "Which whole number lies between 7 and 9?", "output": "8"})
    labelled = curator.label(added.id, {"verdict": "approve", "score": 4})
    with pytest.raises(ValidationFailed):  # the server decodes %2F before routing: this withdrew the label
        curator.delete(f"{added.id}/labels/{labelled.label.id}")
    assert curator.labels(added.id)[0].withdrawn_at is None and curator.get(added.id).id == added.id
    for lookalike in (f"{added.id}?b=c", f"{added.id}#top", f"{added.id} ", "..", "."):
        with pytest.raises(NotFound):  # fetched the example itself, or another route, before
            curator.get(lookalike)
    with pytest.raises(ValidationFailed) as export:
        curator.get("export")  # downloaded the whole export, then a raw pydantic error
    assert export.value.field == "example_id"
    with pytest.raises(ValidationFailed) as empty:
        curator.get("")  # "307 http_error" before
    assert empty.value.field == "example_id"
    with pytest.raises(FewshotAPIError):
        curator.get("\x00")  # httpx.InvalidURL before; now sent as %00 and answered


def _get_in_a_worker(url: str, example_id: str) -> str:
    with FewshotClient(url, KEY_OF["curator"]) as client:
        return client.get(example_id).id


def test_an_error_raised_in_a_worker_process_reaches_the_caller_whole(url: str) -> None:
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that may run threads
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        with pytest.raises(NotFound) as missing:  # could not be unpickled: BrokenProcessPool before
            pool.submit(_get_in_a_worker, url, "no-such-example").result(timeout=60)
        assert (missing.value.status, missing.value.code, missing.value.field) == (404, "not_found", "id")
        assert missing.value.request_id and "no-such-example" in missing.value.message
        with pytest.raises(NotFound):
            pool.submit(_get_in_a_worker, url, "still-no-such-example").result(timeout=60)  # the pool lives on


def test_add_takes_one_example_and_skips_a_duplicate_as_none(curator: FewshotClient) -> None:
    question = {"input": "How many sides does a heptagon have?", "output": "7"}
    stored = curator.add(question)
    assert curator.add(question, on_duplicate="skip") is None  # IndexError before
    assert curator.add(question, on_duplicate="keep").id != stored.id
    batch = {"examples": [{"input": "Batch via add: what is 3 cubed?"}, {"input": "Batch via add: what is 2 cubed?"}]}
    with pytest.raises(ValidationFailed) as refused:  # stored both and returned the first before
        curator.add(batch)
    assert refused.value.field == "examples" and "add_many()" in refused.value.message
    assert curator.list_examples(q="Batch via add").examples == []


def test_import_checks_the_file_before_uploading_and_takes_a_mode(
    url: str, server_root: Path, curator: FewshotClient, tmp_path: Path
) -> None:
    log = server_root / "server.log"

    def imports_seen() -> int:
        return log.read_text().count("/v1/examples/import")

    before = imports_seen()
    with pytest.raises(FileNotFoundError) as missing:
        curator.import_jsonl(tmp_path / "bank.jsonl")
    assert missing.value.filename == str(tmp_path / "bank.jsonl")
    assert curator.import_jsonl(b'{"input": "Imported after a missing file: name a prime."}\n')["imported"] == 1
    deadline = time.monotonic() + 5
    while imports_seen() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert imports_seen() == before + 1  # the missing file's upload never started (it did, and broke, before)
    line = {"id": "restored-by-client", "input": "Restored: what is 9 x 9?", "output": "81", "status": "approved"}
    with pytest.raises(Forbidden) as curator_restores:
        curator.import_jsonl([line], mode="restore")
    assert curator_restores.value.field == "mode"
    with FewshotClient(url, KEY_OF["admin"]) as admin:
        report = admin.import_jsonl([line], mode="restore")
        assert report["mode"] == "restore" and report["imported"] == 1
        restored = admin.get("restored-by-client")  # its own id and status: curate gives new ones
    assert restored.status == "approved" and restored.output == "81"
