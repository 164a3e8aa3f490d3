"""What the client refuses itself, before sending: bad arguments as the service's 422 (ValidationFailed naming
the field), configuration mistakes at construction; and its exceptions survive pickle and copy."""

from __future__ import annotations

import asyncio
import copy
import math
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fewshot_service.client import (
    AsyncFewshotClient,
    Conflict,
    FewshotAPIError,
    FewshotClient,
    FewshotConnectionError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

SURROGATE = "\ud800"


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(sent: list[httpx.Request]) -> Iterator[FewshotClient]:
    """A client whose requests are recorded and answered 500: every case here must stop before sending."""

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with httpx.Client(base_url="http://service", transport=httpx.MockTransport(record)) as http:
        yield FewshotClient(http=http)


BAD_CALLS: list[tuple[str, Callable[[FewshotClient], Any], str, str]] = [
    # (case, call, field named, words of the message)
    ("prompt None", lambda c: c.select(None), "prompt", "prompt: must be a string, not NoneType"),
    ("prompt a number", lambda c: c.select(123), "prompt", "prompt: must be a string, not int"),
    ("prompt a list", lambda c: c.select(["a"]), "prompt", "prompt: must be a string, not list"),
    ("add None", lambda c: c.add(None), "example", "example: must be an object"),
    ("add_many one dict", lambda c: c.add_many({"input": "x"}), "examples", "examples: must be a list"),
    ("add_many a str item", lambda c: c.add_many(["x"]), "examples.0", "examples.0: must be an object"),
    ("diversity NaN", lambda c: c.select("q", diversity=math.nan), "diversity", "diversity: must be a finite number"),
    ("topic_preference inf", lambda c: c.select("q", topic_preference=math.inf), "topic_preference", "finite"),
    ("utility_weight -inf", lambda c: c.select("q", utility_weight=-math.inf), "utility_weight", "finite"),
    ("min_quality NaN", lambda c: c.select("q", filters={"min_quality": math.nan}), "filters.min_quality", "finite"),
    ("outcome NaN", lambda c: c.feedback("s" * 32, math.nan), "outcome", "outcome: must be a finite number"),
    (
        "lone surrogate in a prompt",
        lambda c: c.select(f"abc {SURROGATE}"),
        "prompt",
        "prompt: holds a lone surrogate (\\ud800 at character 4), which UTF-8 cannot carry",
    ),
    ("surrogate in an input", lambda c: c.add({"input": f"x{SURROGATE}"}), "input", "lone surrogate"),
    ("surrogate in a batch", lambda c: c.add_many([{"input": "a"}, {"input": SURROGATE}]), "examples.1.input", ""),
    ("surrogate in q", lambda c: c.list_examples(q=SURROGATE), "q", "q: holds a lone surrogate"),
    ("surrogate in a note", lambda c: c.feedback("s" * 32, "success", note=SURROGATE), "note", "lone surrogate"),
    ("surrogate in an id", lambda c: c.get(SURROGATE), "example_id", "lone surrogate"),
    ("bytes in a body", lambda c: c.add({"input": b"x"}), "input", "not bytes"),
    ("empty id", lambda c: c.get(""), "example_id", "example_id: must not be empty"),
    ("id None", lambda c: c.delete(None), "example_id", "example_id: must be a string"),
    ("id a number", lambda c: c.history(7), "example_id", "must be a string, not int"),
    ("id with a slash", lambda c: c.delete("../admin/keys/k1"), "example_id", "'/'"),
    ("label id with a slash", lambda c: c.withdraw_label("e1", "../../x"), "label_id", "'/'"),
    ("id naming a route", lambda c: c.get("export"), "example_id", "names the route /v1/examples/export"),
    ("version not a number", lambda c: c.edit("e1", {}, version="1\n"), "version", "must be an integer"),
    ("a batch given to add", lambda c: c.add({"examples": [{"input": "a"}]}), "examples", "add_many()"),
    ("on_duplicate unknown", lambda c: c.add({"input": "a"}, on_duplicate="ignore"), "on_duplicate", "reject"),
    ("edit on_duplicate skip", lambda c: c.edit("e1", {}, on_duplicate="skip"), "on_duplicate", "reject, keep"),
    ("import mode unknown", lambda c: c.import_jsonl(b"", mode="replace"), "mode", "curate, restore"),
    ("import one record", lambda c: c.import_jsonl({"input": "a"}), "source", "a list of records"),
    (
        "import record NaN",
        lambda c: c.import_jsonl([{"input": "a", "difficulty": math.nan}]),
        "source.0.difficulty",
        "",
    ),
]


@pytest.mark.parametrize(("call", "field", "words"), [case[1:] for case in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_a_bad_argument_is_the_services_422_raised_before_sending(
    client: FewshotClient, sent: list[httpx.Request], call: Callable[[FewshotClient], Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        call(client)
    error = refused.value
    assert (error.status, error.code, error.field) == (422, "invalid_input", field)
    assert error.message.startswith(f"{field}: ") and words in error.message
    assert error.request_id is None and sent == []


def test_the_async_client_refuses_the_same_before_sending(sent: list[httpx.Request]) -> None:
    async def run() -> None:
        transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500))
        async with httpx.AsyncClient(base_url="http://service", transport=transport) as http:
            client = AsyncFewshotClient(http=http)
            with pytest.raises(ValidationFailed) as bad:
                await client.select("q", diversity=math.nan)
            assert bad.value.field == "diversity"
            with pytest.raises(ValidationFailed) as bad:
                await client.delete("../admin/keys/k1")
            assert bad.value.field == "example_id"
            with pytest.raises(FileNotFoundError):
                await client.import_jsonl(Path("no-such-bank.jsonl"))

    asyncio.run(run())
    assert sent == []


@pytest.mark.parametrize(
    ("example_id", "sent_path"),
    [
        ("a?b=c", "/v1/examples/a%3Fb%3Dc"),  # never the id "a" with a query
        ("a#b", "/v1/examples/a%23b"),
        ("..", "/v1/examples/%2E%2E"),  # never a step up to /v1
        ("x y", "/v1/examples/x%20y"),
        ("\x00", "/v1/examples/%00"),  # httpx.InvalidURL before
        ("ab_C-9", "/v1/examples/ab_C-9"),
    ],
)
def test_an_id_is_one_percent_encoded_path_segment(example_id: str, sent_path: str) -> None:
    seen: list[httpx.Request] = []

    def not_found(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such example"}})

    transport = httpx.MockTransport(not_found)
    with httpx.Client(base_url="http://service", transport=transport) as http, pytest.raises(NotFound):
        FewshotClient(http=http).get(example_id)
    assert [request.url.raw_path.decode() for request in seen] == [sent_path]


def test_a_missing_import_file_is_named_before_the_upload_starts(client: FewshotClient, sent: list[Any]) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        client.import_jsonl("bank.jsonl")
    assert missing.value.filename == "bank.jsonl" and "bank.jsonl" in str(missing.value) and sent == []


# -- configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["fsk_secret\n", "fsk_se cret", "fsk_clé", "fsk_\x00x"])
def test_a_key_no_header_can_carry_is_refused_at_construction_without_echoing_it(key: str) -> None:
    with pytest.raises(ValueError, match=r"api_key .* HTTP header") as refused:
        FewshotClient("http://127.0.0.1:9", key)
    assert "fsk_" not in str(refused.value) and "secret" not in str(refused.value)
    with pytest.raises(ValueError, match="api_key"):
        AsyncFewshotClient("http://127.0.0.1:9", key)


def test_a_bad_key_in_the_environment_is_named_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_API_KEY", "fsk_secret\n")
    with pytest.raises(ValueError, match="FEWSHOT_API_KEY holds '\\\\n' at character 10") as refused:
        FewshotClient("http://127.0.0.1:9")
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "localhost:8000", "", "ftp://host", "http://"])
def test_a_base_url_without_http_or_https_is_refused_at_construction(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_URL", "http://127.0.0.1:9")  # an explicit "" does not fall back to it
    with pytest.raises(ValueError, match="needs http:// or https://") as refused:
        FewshotClient(url, "fsk_key")
    assert repr(url) in str(refused.value)


def test_an_omitted_url_falls_back_to_the_environment_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_URL", "http://fewshot.internal:8013/")
    with FewshotClient() as client:
        assert (client._http.base_url.host, client._http.base_url.port) == ("fewshot.internal", 8013)
    monkeypatch.delenv("FEWSHOT_URL")
    with FewshotClient() as client:
        assert (client._http.base_url.host, client._http.base_url.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize("timeout", [-1, 0, math.nan, "30", True])
def test_a_timeout_that_is_no_positive_number_is_refused(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        FewshotClient("http://127.0.0.1:9", timeout=timeout)
    with FewshotClient("http://127.0.0.1:9", timeout=None) as unlimited:
        assert unlimited._http.timeout == httpx.Timeout(None)


# -- exceptions --------------------------------------------------------------------------------------------

KINDS = [
    FewshotAPIError,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    ValidationFailed,
    RateLimited,
    Unavailable,
    FewshotConnectionError,
]


@pytest.mark.parametrize("kind", KINDS)
def test_every_error_survives_pickle_and_copy_with_its_attributes(kind: type[FewshotAPIError]) -> None:
    error = kind(
        409, "duplicate", "an exact duplicate", field="input", request_id="req-1", details={"duplicates": [{"p": 0}]}
    )
    error.add_note("while seeding")
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(again) is kind and str(again) == str(error) and again.args == error.args
        assert (again.status, again.code, again.message, again.field, again.request_id, again.details) == (
            409,
            "duplicate",
            "an exact duplicate",
            "input",
            "req-1",
            {"duplicates": [{"p": 0}]},
        )
        assert again.__notes__ == ["while seeding"]
