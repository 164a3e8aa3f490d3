"""Limits: body size (413), bounds on every field (422, never 500), the per-key rate limit (429 with
Retry-After) and the concurrency limit (503 with Retry-After, quickly, on a real server)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from fewshot_service.api import create_app
from fewshot_service.api.middleware.ratelimit import RateLimiter
from fewshot_service.api.routes.examples import _lines
from fewshot_service.auth import parse_api_keys
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.errors import ConfigurationError

from ..keyed import SPEC, bearer, keyed_service, tiny_seed_dir
from ..servers import live_server


class ManualClock:
    """The rate limiter's clock, moved only by the test: a slow machine cannot refill a bucket mid-test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_manual_clock(app: FastAPI) -> FastAPI:
    """The app's own limiter (built from its settings), timed by a ManualClock."""
    limiter: RateLimiter = app.state.rate_limiter
    limiter._clock = ManualClock()
    return app


def advance(client: TestClient, seconds: float) -> None:
    client.app.state.rate_limiter._clock.now += seconds  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    # Two requests at once per key, then one a second (of the manual clock's).
    service = keyed_service(tmp_path_factory.mktemp("limits"), embedder, rate_limit_per_second=1, rate_limit_burst=2)
    with TestClient(with_manual_clock(create_app(service.settings, service, start="now"))) as client:
        yield client
    service.bank.close()


@pytest.fixture(scope="module")
def unlimited(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    service = keyed_service(tmp_path_factory.mktemp("bounds"), embedder, rate_limit_per_second=0)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        yield client
    service.bank.close()


def select(client: TestClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return client.post("/v1/select", json={"prompt": "How many marbles are in the box?", **body}, headers=headers)


def test_each_key_has_its_own_bucket_and_a_429_says_when_to_retry(limited: TestClient) -> None:
    assert [select(limited, bearer("reader")).status_code for _ in range(2)] == [200, 200]
    refused = select(limited, bearer("reader"))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    assert select(limited, bearer("curator")).status_code == 200  # another key is not slowed down
    advance(limited, wait)
    assert select(limited, bearer("reader")).status_code == 200  # refilled as announced


def test_failed_key_attempts_are_limited_per_address(limited: TestClient) -> None:
    wrong = {"Authorization": "Bearer guess-0001"}
    statuses = [select(limited, wrong).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_without_keys_a_burst_of_local_selects_is_never_limited(tmp_path: Path, make_service: Any) -> None:
    # Default settings: three local clients selecting as fast as they can, and an admin call beside them.
    service = make_service(seed_dir=tiny_seed_dir(tmp_path / "seed"))
    with TestClient(create_app(service.settings, service, start="now")) as client:

        def burst(n: int) -> list[int]:
            return [select(client, {}, k=1).status_code for _ in range(n)]

        with ThreadPoolExecutor(max_workers=3) as pool:
            statuses = [status for batch in pool.map(burst, [150, 150, 150]) for status in batch]
        assert statuses == [200] * 450
        assert client.get("/v1/admin/index").status_code == 200
        assert client.get("/healthz").status_code == 200


def test_a_key_whose_select_bucket_is_empty_still_reaches_probes_metrics_and_admin(limited: TestClient) -> None:
    for role in ("reader", "admin"):
        while select(limited, bearer(role)).status_code != 429:
            pass
    assert select(limited, bearer("curator")).status_code == 200  # another key selects on
    assert limited.get("/metrics", headers=bearer("reader")).status_code == 200  # its own bucket per route kind
    assert limited.get("/v1/admin/index", headers=bearer("admin")).status_code == 200
    assert limited.get("/v1/admin/keys", headers=bearer("admin")).status_code == 200
    for probe in ("/healthz", "/readyz"):
        assert [limited.get(probe).status_code for _ in range(5)] == [200] * 5
    assert select(limited, bearer("reader")).status_code == 429  # and the empty bucket is still empty


OWN_RATES = {"slow-key-0123456789": ("slow", 3), "free-key-0123456789": ("free", 0)}


def test_a_key_may_carry_its_own_rate_in_the_settings_and_in_the_bank(tmp_path: Path, make_service: Any) -> None:
    spec = ",".join([SPEC, *(f"{key}:reader:{name}:{rate}" for key, (name, rate) in OWN_RATES.items())])
    service = make_service(
        seed_dir=tiny_seed_dir(tmp_path / "seed"), api_keys=spec, rate_limit_per_second=1, rate_limit_burst=2
    )
    with TestClient(with_manual_clock(create_app(service.settings, service, start="now"))) as client:
        slow = {"Authorization": "Bearer slow-key-0123456789"}
        assert [select(client, slow).status_code for _ in range(4)] == [200, 200, 200, 429]  # 3/s, not 1/s
        free = {"Authorization": "Bearer free-key-0123456789"}
        assert {select(client, free).status_code for _ in range(20)} == {200}  # 0: no limit for this key
        assert [select(client, bearer("reader")).status_code for _ in range(3)] == [200, 200, 429]  # the default

        made = client.post(
            "/v1/admin/keys", json={"name": "batch", "role": "reader", "rate_per_second": 4}, headers=bearer("admin")
        )
        assert made.status_code == 201 and made.json()["rate_per_second"] == 4
        batch = {"Authorization": f"Bearer {made.json()['key']}"}
        assert [select(client, batch).status_code for _ in range(5)] == [200, 200, 200, 200, 429]
        refused = client.post(
            "/v1/admin/keys", json={"name": "bad", "role": "reader", "rate_per_second": -1}, headers=bearer("admin")
        )
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "rate_per_second"
        advance(client, 1)  # the admin's own bucket (1/s, two at once) has given its two
        listed = client.get("/v1/admin/keys", headers=bearer("admin")).json()
        assert [k["rate_per_second"] for k in listed if k["name"] == "batch"] == [4]


@pytest.mark.parametrize("rate", ["fast", "-1", "nan", "inf"])
def test_a_bad_rate_in_the_key_settings_names_the_entry(rate: str) -> None:
    with pytest.raises(ConfigurationError, match=f"entry 2 has rate '{rate}'"):
        parse_api_keys(f"k1:reader,k2:reader:job:{rate}")
    # the old forms stay valid
    assert [p.rate for _, p in parse_api_keys("k1:reader,k2:admin:ops,k3:reader::7")] == [None, None, 7.0]


def test_bodies_over_one_mebibyte_get_413_in_the_contract_body(unlimited: TestClient) -> None:
    response = select(unlimited, bearer("admin"), exclude_ids=["x" * 60] * 20_000)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "the request body exceeds 1048576 bytes",
        "field": "body",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seed": -1}, "seed"),  # was a 500: numpy refuses negative seeds
        ({"strategy": "m" * 33}, "strategy"),
        ({"format": "text", "template": "{input:d}"}, "template"),  # was a 500 when rendering
        ({"format": "text", "template": "{input:{output}}"}, "template"),
        ({"exclude_ids": ["x"] * 1001}, "exclude_ids"),
        ({"filters": {"sources": ["llm"] * 11}}, "filters.sources"),
        ({"filters": {"statuses": ["approved"] * 11}}, "filters.statuses"),
        ({"k": 51}, "k"),
    ],
)
def test_out_of_bounds_select_fields_are_422_naming_the_field(
    unlimited: TestClient, body: dict[str, Any], field: str
) -> None:
    response = select(unlimited, bearer("admin"), **body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_a_token_budget_over_filters_matching_nothing_is_an_empty_answer(unlimited: TestClient) -> None:
    # Was a 500: the tokenizer raised on an empty batch.
    response = select(unlimited, bearer("admin"), max_tokens=100, filters={"topics": ["no-such-topic"]})
    assert response.status_code == 200 and response.json()["examples"] == []


def test_other_bounds(unlimited: TestClient) -> None:
    admin = bearer("admin")
    batch = [{"input": f"Bound check {n}: what is {n} + 1?"} for n in range(501)]
    assert unlimited.post("/v1/examples", json={"examples": batch}, headers=admin).status_code == 413
    assert unlimited.get(f"/v1/examples/{'x' * 65}", headers=admin).status_code == 422
    assert (
        unlimited.get("/v1/examples", params={"topic": [f"t{n}" for n in range(101)]}, headers=admin).status_code == 422
    )
    big = {"prompt": "p", "response_a": "a", "response_b": "b", "metadata": {"blob": "x" * 17_000}}
    answer = unlimited.post("/v1/preferences", json=big, headers=admin)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "metadata"
    patch = unlimited.patch("/v1/examples/some-id", json={"tags": ["a"]}, headers={**admin, "If-Match": "9" * 101})
    assert patch.status_code == 422


def test_a_single_valued_query_parameter_given_twice_is_refused(unlimited: TestClient) -> None:
    admin = bearer("admin")
    twice = unlimited.get("/v1/examples", params=[("q", "marbles"), ("q", "jars")], headers=admin)
    assert twice.status_code == 422 and twice.json()["error"]["field"] == "q"
    lists = unlimited.get("/v1/examples", params=[("status", "pending"), ("status", "approved")], headers=admin)
    assert lists.status_code == 200  # list parameters repeat by design


def test_an_overlong_import_line_is_reported_without_being_held() -> None:
    chunks = [b'{"input": "ok"}\n', b"y" * 700, b"y" * 700, b"y\n", b'{"input": "also ok"}']

    async def receive() -> dict[str, Any]:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def read() -> list[bytes | None]:
        request = Request({"type": "http", "method": "POST", "headers": []}, receive)
        return [line async for line in _lines(request, longest=1000)]

    lines = asyncio.run(read())
    assert lines == [b'{"input": "ok"}', None, b'{"input": "also ok"}']


def test_past_the_concurrency_limit_requests_get_503_quickly_and_probes_still_answer(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    service = keyed_service(tmp_path, embedder, rate_limit_per_second=0, max_in_flight=1, queue_timeout_seconds=0.5)
    release = threading.Event()

    def slow_upload() -> Iterator[bytes]:
        yield b'{"input": "A held upload: how long is a piece of string?"}\n'
        release.wait(30)  # the request stays in flight, its body unfinished, until released
        yield b'{"input": "The rest of the held upload: and how wide?"}\n'

    with (
        live_server(create_app(service.settings, service, start="now")) as url,
        httpx.Client(base_url=url, timeout=30, headers=bearer("admin")) as client,
    ):
        held: dict[str, httpx.Response] = {}
        upload = threading.Thread(
            target=lambda: held.setdefault(
                "r",
                client.post(
                    "/v1/examples/import", content=slow_upload(), headers={"content-type": "application/x-ndjson"}
                ),
            )
        )
        upload.start()
        wait_for_in_flight(client, 1)

        started = time.monotonic()
        refused = client.post("/v1/select", json={"prompt": "Anything?"})
        took = time.monotonic() - started
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1" and refused.json()["error"]["code"] == "overloaded"
        assert 0.4 <= took < 3.0  # waited its queue time, then answered: no unbounded queue
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200

        # A request that finds the slot taken but freed within its queue time is served.
        queued: dict[str, httpx.Response] = {}
        waiter = threading.Thread(
            target=lambda: queued.setdefault("r", client.post("/v1/select", json={"prompt": "Anything?"}))
        )
        waiter.start()
        time.sleep(0.15)
        release.set()
        upload.join(30)
        waiter.join(30)
        assert held["r"].status_code == 200 and held["r"].json()["imported"] == 2
        assert queued["r"].status_code == 200
    service.bank.close()


def wait_for_in_flight(client: httpx.Client, count: int) -> None:
    """Until the server reports `count` requests in flight besides the scrape itself."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        scrape = client.get("/metrics").text
        found = re.search(r"^fewshot_http_requests_in_flight (\S+)$", scrape, re.M)
        if found and float(found.group(1)) - 1 >= count:
            return
        time.sleep(0.02)
    raise AssertionError("the held request never reached the server")
