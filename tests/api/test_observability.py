"""GET /metrics in the Prometheus format, counting what happens; JSON log lines carrying the request id, and
never the prompt unless the operator asks for it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fewshot_service.api import create_app
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.logs import JsonFormatter, RequestIdFilter

from ..keyed import bearer, keyed_service

PROMPT = "Zanzibar quokka riddle: how many legs do seven quokkas and two herons have?"


@pytest.fixture
def observed(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    service = keyed_service(tmp_path, embedder, rate_limit_per_second=0)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        yield client
    service.bank.close()


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=bearer("reader"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_requests_per_route_template_and_describe_the_index(observed: TestClient) -> None:
    before = scrape(observed)
    for n in range(3):
        prompt = f"{PROMPT} (variant {n})"  # distinct prompts: a repeated one may be served from a cache
        assert observed.post("/v1/select", json={"prompt": prompt}, headers=bearer("reader")).status_code == 200
    example_id = observed.get("/v1/examples", headers=bearer("curator")).json()["examples"][0]["id"]
    observed.get(f"/v1/examples/{example_id}", headers=bearer("curator"))
    observed.get("/v1/examples/no-such-example", headers=bearer("curator"))
    observed.get("/wp-login.php")
    after = scrape(observed)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    select = {"method": "POST", "route": "/v1/select"}
    assert delta("fewshot_http_requests_total", **select, status="200") == 3
    assert delta("fewshot_http_request_duration_seconds_count", **select) == 3
    assert delta("fewshot_http_request_duration_seconds_sum", **select) > 0
    one = {"method": "GET", "route": "/v1/examples/{example_id}"}  # the template, never the raw path
    assert delta("fewshot_http_requests_total", **one, status="200") == 1
    assert delta("fewshot_http_requests_total", **one, status="404") == 1
    assert delta("fewshot_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert not any("wp-login" in str(labels) or example_id in str(labels) for _, labels in after)

    # Each of these selects embedded its prompt.
    assert delta("fewshot_embedding_seconds_count") >= 3 and delta("fewshot_embedded_texts_total") >= 3
    ready = observed.get("/readyz").json()
    assert after[("fewshot_index_size", ())] == ready["examples"]
    assert after[("fewshot_ready", ())] == 1
    info = [labels for name, labels in after if name == "fewshot_index_info"]
    assert info == [(("model", ready["model"]), ("version", ready["index_version"]))]
    assert after[("fewshot_index_bank_revision", ())] == ready["bank_revision"]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the process, at DEBUG, through the formatter `fewshot serve` uses."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_log_lines_are_json_with_the_request_id_and_no_prompt(observed: TestClient, captured: io.StringIO) -> None:
    answered = observed.post(
        "/v1/select", json={"prompt": PROMPT}, headers={**bearer("reader"), "X-Request-ID": "trace-42.a"}
    )
    assert answered.headers["X-Request-ID"] == "trace-42.a"  # a caller's id is kept and echoed
    created = observed.post("/v1/admin/keys", json={"name": "logged", "role": "reader"}, headers=bearer("admin"))
    generated = created.headers["X-Request-ID"]
    assert len(generated) == 32  # none given: one is made
    unsafe = observed.get("/healthz", headers={"X-Request-ID": "bad id\nwith a newline"})
    assert unsafe.headers["X-Request-ID"] != "bad id\nwith a newline"

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]  # every line is one JSON object
    access = [line for line in lines if line["logger"] == "fewshot_service.access"]
    select = next(line for line in access if line["route"] == "/v1/select")
    assert select["request_id"] == "trace-42.a" and select["status"] == 200 and select["key"] == "app-server"
    assert select["duration_ms"] > 0
    # A line written inside the (thread-pool) route carries its request's id too.
    made = next(line for line in lines if line["message"] == "API key created")
    assert made["request_id"] == generated and made["key_name"] == "logged" and made["by"] == "ops"
    assert "key" not in made or made["key"] != created.json()["key"]
    assert created.json()["key"] not in captured.getvalue()  # the secret is never logged
    assert PROMPT not in captured.getvalue() and "quokka" not in captured.getvalue()


def test_prompts_reach_the_logs_only_when_configured(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, captured: io.StringIO
) -> None:
    service = keyed_service(tmp_path, embedder, log_prompts=True)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        client.post("/v1/select", json={"prompt": PROMPT}, headers=bearer("reader"))
    service.bank.close()
    logged = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert any(line.get("prompt") == PROMPT and line.get("request_id") for line in logged)
