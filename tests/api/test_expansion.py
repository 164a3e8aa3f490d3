"""LLM expansion against a real local HTTP server that speaks the chat completions protocol.

Each test scripts the server's answers (well-formed, malformed, slow, 429 and 5xx) and checks what lands
in a real bank: pending source=llm examples with provenance, drops counted by reason, retries made, and
--fill-gaps stopping once every cell has its target. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.cli import app as cli_app
from fewshot_service.cli.setup import Setup
from fewshot_service.curation.service import Curator
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.errors import ConfigurationError
from fewshot_service.expansion import Expander, ExpandRequest, load_template
from fewshot_service.expansion.answers import Bounds, Candidate, MalformedAnswer, check_item, parse_answer
from fewshot_service.expansion.seeds import SeedPool, choose_seeds
from fewshot_service.index import IndexStore
from fewshot_service.models import Example, ExampleCreate
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..helpers import write_jsonl

SEED = [
    {"external_id": "a1-bus", "input": "A bus covers 180 km in 3 hours. What is its average speed?",
     "output": "60 km/h", "steps": ["180 / 3 = 60."], "topic": "arithmetic", "difficulty": 1, "status": "approved"},
    {"external_id": "a1-notebooks", "input": "Tom buys 4 notebooks at 2.50 dollars each. How much does he spend?",
     "output": "10 dollars", "steps": ["4 × 2.50 = 10."], "topic": "arithmetic", "difficulty": 1, "status": "approved"},
    {"external_id": "a1-sweets", "input": "Share 24 sweets equally among 6 children. How many does each child get?",
     "output": "4", "steps": ["24 / 6 = 4."], "topic": "arithmetic", "difficulty": 1, "status": "approved"},
    {"external_id": "a2-pens", "input": "A shop sells pens at 3 for 2 dollars. How much do 12 pens cost?",
     "output": "8 dollars", "steps": ["12 pens are 4 groups of 3.", "4 × 2 = 8."], "topic": "arithmetic",
     "difficulty": 2, "status": "approved"},
    {"external_id": "g1-area", "input": "Find the area of a rectangle 7 m long and 3 m wide.", "output": "21 m²",
     "steps": ["7 × 3 = 21."], "topic": "geometry", "difficulty": 1, "status": "approved"},
    {"external_id": "g1-square", "input": "A square has a side of 5 cm. What is its perimeter?", "output": "20 cm",
     "steps": ["4 × 5 = 20."], "topic": "geometry", "difficulty": 1, "status": "approved"},
    {"external_id": "g1-circle", "input": "A circle has a diameter of 10 cm. What is its radius?", "output": "5 cm",
     "topic": "geometry", "difficulty": 1, "status": "pending"},
    {"external_id": "p2-coin", "input": "A fair coin is tossed twice. What is the chance of two heads?",
     "output": "1/4", "steps": ["1/2 × 1/2 = 1/4."], "topic": "probability", "difficulty": 2, "status": "approved"},
    {"external_id": "p2-die", "input": "A die is rolled. What is the chance of an even number greater than 2?",
     "output": "1/3", "topic": "probability", "difficulty": 2, "status": "rejected"},
    {"external_id": "l3-liars", "input": "Of two brothers one always lies and one never does. Which question finds "
     "the truthful one?", "output": "Ask either what his brother would say.", "topic": "logic", "difficulty": 3,
     "status": "rejected"},
]  # fmt: skip

# Distinct problems the fake model hands out one by one (pairwise cosine below 0.65 with the real model).
POOL = [
    "A baker makes 144 rolls and packs them in bags of 12. How many bags does she fill?",
    "A cinema ticket costs 9 dollars. How much do 7 tickets cost?",
    "Mia reads 35 pages a day. How many pages does she read in two weeks?",
    "A tank holds 250 litres and drains at 10 litres per minute. How long until it is empty?",
    "What is 15% of 240? Give the answer as a whole number.",
    "A train leaves at 09:40 and arrives at 13:05. How long is the journey?",
    "Find the circumference of a circle with a radius of 4 cm, to one decimal place.",
    "A triangle has a base of 10 cm and a height of 6 cm. What is its area?",
    "A farmer fences a rectangular field 40 m by 25 m. How much fencing does he need?",
    "The angles of a triangle are 50 and 60 degrees. What is the third angle?",
    "A garden hose fills a 60-litre barrel in 4 minutes. What is its flow rate in litres per minute?",
    "Eggs come in boxes of 6. How many boxes are needed for 75 eggs?",
    "A cube has edges of 3 cm. What is its volume?",
    "A recipe needs 250 g of flour for 4 people. How much flour is needed for 10 people?",
    "A car uses 6 litres of fuel per 100 km. How much fuel does it need for 350 km?",
    "How many seconds are there in 2.5 hours?",
]
BANK_PARAPHRASE = "A bus travels 180 km in 3 hours. What is its average speed?"
BATCH_PARAPHRASE = "A baker bakes 144 rolls and packs them into bags of 12. How many bags does she fill?"
USAGE = {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140}


# -- a scriptable chat completions server ------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a dict is sent as JSON, a str as it is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str | dict[str, Any], usage: dict[str, int] | None = None) -> Reply:
    """A well-formed chat completion whose message content is `content` (a dict is sent as its JSON)."""
    text = content if isinstance(content, str) else json.dumps(content)
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return Reply(body={"id": "c", "object": "chat.completion", "choices": [choice], "usage": usage or USAGE})


def item(text: str) -> dict[str, Any]:
    return {"input": text, "output": "42", "steps": ["Work it out.", "The answer is 42."]}


class FakeLLM:
    """POST /v1/chat/completions on 127.0.0.1: scripted replies first, then new examples from POOL."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.pool = deque(POOL)
        self.requests: list[tuple[float, dict[str, Any]]] = []
        self.active = self.peak = 0  # requests being answered now, and the most at once
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                reply = fake.reply(self.path, body)
                time.sleep(reply.delay)
                with fake._lock:
                    fake.active -= 1
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload.encode())))
                    self.end_headers()
                    self.wfile.write(payload.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: what a slow server sees

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append((time.monotonic(), body))
            self.active += 1
            self.peak = max(self.peak, self.active)
            if path != "/v1/chat/completions":
                return Reply(404, {"error": {"message": f"no route {path}"}})
            if self.script:
                return self.script.popleft()
            asked = re.search(r"Write (\d+) new example", body["messages"][-1]["content"])
            wanted = int(asked.group(1)) if asked else 1
            return completion({"examples": [item(self.pool.popleft()) for _ in range(wanted)]})

    def served(self) -> list[str]:
        """Inputs handed out from the pool so far."""
        return POOL[: len(POOL) - len(self.pool)]


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


# -- the service under test ----------------------------------------------------------------------------
def llm_settings(llm: FakeLLM) -> dict[str, Any]:
    return {
        "llm_base_url": llm.url,
        "llm_model": "fake-model",
        "llm_api_key": "sk-test",
        "llm_timeout_seconds": 0.5,
        "llm_backoff_seconds": 0.01,
        "llm_max_retries": 3,
        "expand_concurrency": 1,  # replies arrive in the scripted order
        "expand_per_call": 2,
        "expand_seeds": 3,
    }


Factory = Callable[..., TestClient]


@pytest.fixture
def expansion(tmp_path: Path, embedder: SentenceTransformerEmbedder, llm: FakeLLM) -> Iterator[Factory]:
    opened: list[tuple[TestClient, SqlBank]] = []

    def start(**overrides: Any) -> TestClient:
        root = tmp_path / f"app{len(opened)}"
        write_jsonl(root / "seed" / "small.jsonl", SEED)
        options = {**llm_settings(llm), **overrides}
        settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=root / "seed", **options)
        bank = SqlBank(settings.resolved_database_url())
        service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
        client = TestClient(create_app(settings, service, start="now"))
        client.__enter__()
        opened.append((client, bank))
        return client

    yield start
    for client, bank in opened:
        client.__exit__(None, None, None)
        bank.close()


def expand(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/admin/expand", json=body, headers={"X-Fewshot-Actor": "cara"})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def generated(client: TestClient) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = client.get("/v1/examples", params={"source": "llm", "limit": 500}).json()[
        "examples"
    ]
    return examples


def ids_of(client: TestClient, topic: str, difficulty: int) -> set[str]:
    page = client.get("/v1/examples", params={"topic": topic, "difficulty_min": difficulty,
                                              "difficulty_max": difficulty, "status": "approved"})  # fmt: skip
    return {e["id"] for e in page.json()["examples"]}


# -- the tests -----------------------------------------------------------------------------------------
def test_generated_examples_land_as_pending_with_provenance(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion()
    report = expand(client, topic="arithmetic", difficulty=1, n=3, temperature=0.5)

    assert report["stored"] == 3 and report["requested"] == 3 and report["stopped"] == "done"
    assert report["calls"] == 2 and report["retries"] == 0 and report["dropped"] == {}  # 2 + 1 per call
    assert report["tokens"] == {"prompt": 200, "completion": 80, "total": 280}
    assert report["cells"] == [{"topic": "arithmetic", "difficulty": 1, "had": 3, "requested": 3, "stored": 3}]
    stored = generated(client)
    assert sorted(e["input"] for e in stored) == sorted(llm.served())
    cell = ids_of(client, "arithmetic", 1)
    for example in stored:
        assert (example["source"], example["status"], example["topic"], example["difficulty"]) == (
            "llm", "pending", "arithmetic", 1,
        )  # fmt: skip
        assert example["output"] == "42" and example["steps"] == ["Work it out.", "The answer is 42."]
        provenance = example["metadata"]["provenance"]
        assert provenance["model"] == "fake-model" and provenance["temperature"] == 0.5
        assert (provenance["template_id"], provenance["template_version"]) == ("expand", 1)
        assert provenance["run_id"] == report["run_id"]
        assert set(provenance["seed_ids"]) == cell  # the cell has exactly expand_seeds examples
    assert sorted(report["stored_ids"]) == sorted(e["id"] for e in stored)

    # What went over the wire: the OpenAI request shape, with the seeds in the prompt.
    _, request = llm.requests[0]
    assert request["model"] == "fake-model" and request["temperature"] == 0.5
    assert request["response_format"] == {"type": "json_object"} and request["max_tokens"] == 2048
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    prompt = request["messages"][1]["content"]
    assert "Topic: arithmetic" in prompt and "Difficulty: 1" in prompt and "Write 2 new example(s)" in prompt
    assert all(seed["input"] in prompt for seed in SEED[:3])

    # They go through review like human work: first in the queue, with who started the run.
    item_ = client.get("/v1/review/next", params={"annotator": "rev"}).json()
    assert item_["reason"] == "pending_llm" and item_["example"]["source"] == "llm"
    assert client.get(f"/v1/examples/{stored[0]['id']}/history").json()[0]["actor"] == "cara"


def test_duplicates_and_bad_answers_are_dropped_and_counted(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion(expand_per_call=4)
    fresh = llm.pool.popleft()
    llm.script.extend([
        completion({"examples": [
            item(BANK_PARAPHRASE),                                          # semantic duplicate of the bank
            item("  find the AREA of a rectangle 7 m long and 3 m wide. "),  # exact duplicate (normalised)
            item(fresh),                                                    # new: stored
            item(fresh),                                                    # exact duplicate within the answer
            item(BATCH_PARAPHRASE),                                         # semantic duplicate within the answer
        ]}),
        completion("Sure! Here are three new examples: 1. A farmer has ..."),  # not JSON
        completion({"examples": [
            {"input": "A lorry carries 12 crates of 30 kg each. What is the total load?"},  # no output
            {"input": "2 + 2?", "output": "4"},                                              # too short
            {"input": "Compute the sum. " + "1 + " * 1500 + "1", "output": "1501"},          # too long
            {"input": ["not", "text"], "output": "x"},                                       # wrong type
            "just a string",                                                                 # not an object
        ]}),
        Reply(body={"object": "chat.completion", "choices": []}),  # a 200 that is no completion at all
    ])  # fmt: skip
    report = expand(client, topic="arithmetic", difficulty=1, n=3, max_calls=10)  # the default budget is 3

    assert report["dropped"] == {
        "duplicate_exact": 2, "duplicate_semantic": 2, "invalid_fields": 2, "malformed_answer": 2,
        "missing_fields": 1, "too_long": 1, "too_short": 1,
    }  # fmt: skip
    assert report["stored"] == 3 and report["stopped"] == "done"
    assert report["generated"] == 5 + 5 + 2  # every item the model wrote, the pool's two included
    assert report["calls"] == 5
    assert sorted(e["input"] for e in generated(client)) == sorted(POOL[:3])


def test_a_nul_character_in_an_answer_drops_the_example(expansion: Factory, llm: FakeLLM) -> None:
    # A body or an import line holding NUL is refused (PostgreSQL cannot store it); a model's answer was
    # stored as it came, so the bank held what its own export could not be restored from.
    client = expansion(expand_per_call=3)
    llm.script.append(completion({"examples": [
        item("A lorry carries 12 crates of 30 kg each.\u0000 What is the total load?"),
        {**item("A pond holds 40 ducks and 13 fly away. How many are left?"), "output": "2\u00007"},
        {**item("A book has 320 pages and Ann reads 40 a day. How many days?"), "steps": ["320 / 40\u0000"]},
    ]}))  # fmt: skip
    report = expand(client, topic="arithmetic", difficulty=1, n=3, max_calls=1)

    assert report["dropped"] == {"invalid_fields": 3} and report["stored"] == 0
    assert generated(client) == []


def test_429_and_5xx_are_retried_honouring_retry_after(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion()
    llm.script.extend([
        Reply(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"}),
        Reply(500, {"error": {"message": "boom"}}),
        Reply(503, "upstream unavailable", {"retry-after-ms": "50"}),
    ])  # fmt: skip
    report = expand(client, topic="geometry", difficulty=1, n=1)

    assert report["stored"] == 1 and report["calls"] == 1 and report["retries"] == 3
    assert len(llm.requests) == 4
    times = [at for at, _ in llm.requests]
    assert times[1] - times[0] >= 0.9  # Retry-After: 1 was honoured
    assert times[2] - times[1] < 0.5 and times[3] - times[2] >= 0.04  # own backoff, then retry-after-ms


def test_a_slow_answer_times_out_and_is_retried(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion()
    llm.script.append(Reply(body=completion({"examples": [item(POOL[5])]}).body, delay=1.2))
    report = expand(client, topic="geometry", difficulty=1, n=1)

    assert report["stored"] == 1 and report["retries"] == 1 and len(llm.requests) == 2
    assert [e["input"] for e in generated(client)] == [POOL[0]]  # the late answer was never read


def test_a_failing_endpoint_is_a_502_and_a_refusal_is_not_retried(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion(llm_max_retries=2)
    llm.script.extend([Reply(500, {"error": {"message": "down"}})] * 3)
    response = client.post("/v1/admin/expand", json={"topic": "geometry", "difficulty": 1, "n": 2})
    assert response.status_code == 502 and response.json()["error"]["code"] == "llm_error"
    assert "after 3 attempt(s)" in response.json()["error"]["message"] and len(llm.requests) == 3

    llm.script.append(Reply(401, {"error": {"message": "invalid api key"}}))
    response = client.post("/v1/admin/expand", json={"topic": "geometry", "difficulty": 1, "n": 2})
    assert response.status_code == 502 and "HTTP 401" in response.json()["error"]["message"]
    assert len(llm.requests) == 4 and generated(client) == []


def test_a_failure_after_some_answers_keeps_them_and_reports_why(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion(llm_max_retries=1, expand_per_call=1)
    llm.script.extend([completion({"examples": [item(POOL[3])]}), *[Reply(502, "bad gateway")] * 2])
    report = expand(client, topic="arithmetic", difficulty=2, n=3)

    assert report["stopped"] == "llm_error" and "HTTP 502" in report["error"]
    assert report["stored"] == 1 and report["failed_calls"] == 1 and report["calls"] == 2
    assert [e["input"] for e in generated(client)] == [POOL[3]]


def test_calls_run_concurrently_up_to_the_limit(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion(expand_concurrency=3, expand_per_call=1)
    llm.script.extend(completion({"examples": [item(text)]}) for text in POOL[:8])
    for reply in llm.script:
        reply.delay = 0.15
    report = expand(client, topic="probability", difficulty=2, n=8)
    assert report["stored"] == 8 and report["calls"] == 8 and llm.peak == 3
    assert sorted(e["input"] for e in generated(client)) == sorted(POOL[:8])


def test_malformed_answers_never_end_the_run_but_the_budget_does(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion()
    llm.script.extend(completion("I cannot answer in JSON, sorry.") for _ in range(10))
    report = expand(client, topic="geometry", difficulty=1, n=2)  # 1 call needed: a budget of 3
    assert report["stopped"] == "max_calls" and report["calls"] == 3 and report["stored"] == 0
    assert report["dropped"] == {"malformed_answer": 3} and report["tokens"]["total"] == 3 * 140


def test_an_interrupted_run_keeps_what_it_stored(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion(expand_per_call=1)
    curator: Curator = client.app.state.curator  # type: ignore[attr-defined]
    expander = Expander(curator)
    plan = expander.plan(ExpandRequest(topic="geometry", difficulty=1, n=5))

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C right after the first batch was stored

    report = expander.run(plan, actor="cli", on_stored=interrupt)
    assert report.stopped == "interrupted" and report.stored == 1 and report.calls == 1
    assert [e["input"] for e in generated(client)] == [POOL[0]]


def test_fill_gaps_generates_until_every_cell_reaches_its_target(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion()
    report = expand(client, fill_gaps=True, target=3)

    # arithmetic/1 has 3 approved, geometry/1 2 approved + 1 pending: full. The rest is filled, the
    # logic/3 cell (only a rejected example) from scratch.
    cells = {(c["topic"], c["difficulty"]): (c["had"], c["requested"], c["stored"]) for c in report["cells"]}
    assert cells == {("arithmetic", 2): (1, 2, 2), ("logic", 3): (0, 3, 3), ("probability", 2): (1, 2, 2)}
    assert report["stopped"] == "done" and report["stored"] == 7 and report["calls"] == 4  # 1 + 2 + 1, 2 per call
    counts: dict[tuple[str, int], int] = {}
    for example in client.get("/v1/examples", params={"limit": 500, "status": ["approved", "pending"]}).json()[
        "examples"
    ]:
        key = (example["topic"], example["difficulty"])
        counts[key] = counts.get(key, 0) + 1
    assert set(counts.values()) == {3}

    # A thin cell shows its own example first, then its topic's neighbours (arithmetic/1).
    pens = ids_of(client, "arithmetic", 2)
    thin = [e for e in generated(client) if (e["topic"], e["difficulty"]) == ("arithmetic", 2)]
    seeds = thin[0]["metadata"]["provenance"]["seed_ids"]
    assert len(seeds) == 3 and seeds[0] in pens and set(seeds[1:]) <= ids_of(client, "arithmetic", 1)

    # Targets met: a second run has nothing to do and makes no call.
    before = len(llm.requests)
    again = expand(client, fill_gaps=True, target=3)
    assert again["requested"] == 0 and again["calls"] == 0 and again["stopped"] == "done"
    assert len(llm.requests) == before

    # A cap shares the examples out to the emptiest cells first; --topic narrows to one topic.
    capped = expand(client, fill_gaps=True, target=5, n=3)
    assert capped["requested"] == 3 and capped["stored"] == 3
    assert {c["requested"] for c in capped["cells"]} == {1}
    narrowed = expand(client, fill_gaps=True, target=4, topic="logic")
    assert [(c["topic"], c["had"], c["requested"]) for c in narrowed["cells"]] == [("logic", 3, 1)]


def test_the_quality_hook_drops_low_scores_and_records_the_prediction(expansion: Factory, llm: FakeLLM) -> None:
    client = expansion()
    scored: list[str] = []

    def stand_in(records: Sequence[ExampleCreate]) -> list[float]:
        scored.extend(r.input for r in records)
        return [0.2 if "cinema" in r.input else 0.85 for r in records]

    client.app.state.predict_quality = stand_in  # type: ignore[attr-defined]
    report = expand(client, topic="arithmetic", difficulty=1, n=3)
    assert report["dropped"] == {"low_quality": 1} and report["stored"] == 3
    assert POOL[1] in scored and POOL[1] not in {e["input"] for e in generated(client)}
    assert {e["metadata"]["provenance"]["predicted_quality"] for e in generated(client)} == {0.85}

    client.app.state.predict_quality = lambda records: None  # no model trained yet: nothing is filtered
    assert expand(client, topic="arithmetic", difficulty=1, n=1)["dropped"] == {}


def test_bad_requests_name_the_field_and_no_llm_is_a_clear_503(expansion: Factory) -> None:
    client = expansion()
    for body, field_ in [
        ({"difficulty": 1, "n": 2}, "topic"),
        ({"topic": "geometry", "n": 2}, "difficulty"),
        ({"topic": "geometry", "difficulty": 1}, "n"),
        ({"topic": "geometry", "difficulty": 6, "n": 2}, "difficulty"),
        ({"topic": "geometry", "difficulty": 1, "n": 0}, "n"),
        ({"topic": "geometry", "difficulty": 1, "n": 2, "temperature": 3}, "temperature"),
        ({"topic": "geometry", "difficulty": 1, "n": 2, "colour": "red"}, "colour"),
        # JSON true is no number (pydantic's lax mode read it as 1)
        ({"topic": "geometry", "difficulty": True, "n": 2}, "difficulty"),
        ({"topic": "geometry", "difficulty": 1, "n": True}, "n"),
        ({"topic": "geometry", "difficulty": 1, "n": 2, "temperature": False}, "temperature"),
        ({"fill_gaps": True, "target": True}, "target"),
        ({"topic": "geometry", "difficulty": 1, "n": 2, "max_calls": True}, "max_calls"),
    ]:
        response = client.post("/v1/admin/expand", json=body)
        assert response.status_code == 422 and response.json()["error"]["field"] == field_, (body, response.text)

    unconfigured = expansion(llm_base_url=None)
    response = unconfigured.post("/v1/admin/expand", json={"topic": "geometry", "difficulty": 1, "n": 2})
    assert response.status_code == 503 and response.json()["error"]["code"] == "llm_not_configured"
    assert "FEWSHOT_LLM_BASE_URL" in response.json()["error"]["message"] and "Retry-After" not in response.headers


def test_the_cli_expands_and_fails_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: SentenceTransformerEmbedder, llm: FakeLLM
) -> None:
    write_jsonl(tmp_path / "seed" / "small.jsonl", SEED)
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEWSHOT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("FEWSHOT_SEED_DIR", str(tmp_path / "seed"))
    for name, value in llm_settings(llm).items():
        monkeypatch.setenv(f"FEWSHOT_{name.upper()}", str(value))
    banks: list[SqlBank] = []

    def build(settings: Settings) -> FewshotService:  # the session's model instead of loading another
        banks.append(SqlBank(settings.resolved_database_url()))
        return FewshotService(settings, banks[-1], lambda: embedder, IndexStore(settings.index_dir))

    def invoke(*args: str) -> Result:  # each run gets its own Setup, as each `fewshot` process would
        return CliRunner().invoke(cli_app, list(args), obj=Setup(build_service=build))

    try:
        result = invoke("expand", "--topic", "geometry", "--difficulty", "1", "--n", "3", "--json")
        assert result.exit_code == 0, result.output
        assert "stored 3 of 3 requested as pending" in result.output and "2 call(s)" in result.output
        report = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
        assert report["stored"] == 3 and report["cells"][0]["topic"] == "geometry"
        stored = [e for e in banks[-1].iter_examples() if e.source == "llm"]
        assert sorted(e.input for e in stored) == sorted(POOL[:3]) and {e.status for e in stored} == {"pending"}

        missing = invoke("expand", "--topic", "geometry", "--n", "3")
        assert missing.exit_code == 1 and "difficulty is required" in missing.output

        monkeypatch.delenv("FEWSHOT_LLM_BASE_URL")
        unconfigured = invoke("expand", "--fill-gaps")
        assert unconfigured.exit_code == 1
        assert "error: LLM expansion needs an OpenAI-compatible endpoint" in unconfigured.output
        assert "Traceback" not in unconfigured.output
    finally:
        for bank in banks:
            bank.close()


# -- the pure parts ------------------------------------------------------------------------------------
BOUNDS = Bounds(min_input_chars=10, max_input_chars=100, max_output_chars=20)


def test_answers_accept_common_near_misses_and_reject_the_rest() -> None:
    good = {"input": "What is six times seven?", "output": 42, "steps": "6 × 7 = 42."}
    assert parse_answer("```json\n" + json.dumps({"examples": [good]}) + "\n```") == [good]
    assert parse_answer(json.dumps(good)) == [good] and parse_answer(json.dumps([good, good])) == [good, good]
    for bad in ("", "Here you go: {", json.dumps({"answer": "42"}), "42"):
        with pytest.raises(MalformedAnswer):
            parse_answer(bad)
    assert check_item(good, BOUNDS) == Candidate("What is six times seven?", "42", ["6 × 7 = 42."])
    assert check_item({**good, "steps": None}, BOUNDS) == Candidate("What is six times seven?", "42", None)
    assert check_item({**good, "output": "  "}, BOUNDS) == "missing_fields"
    assert check_item({**good, "output": True}, BOUNDS) == "invalid_fields"
    assert check_item({**good, "steps": {"1": "x"}}, BOUNDS) == "invalid_fields"
    assert check_item({**good, "output": "x" * 21}, BOUNDS) == "too_long"
    assert check_item({**good, "steps": ["x" * 21]}, BOUNDS) == "too_long"
    assert check_item({**good, "input": "Six × 7?"}, BOUNDS) == "too_short"


def test_seeds_come_from_the_cell_first_and_are_spread_out() -> None:
    def example(n: int) -> Example:
        return Example(id=f"e{n}", input=f"problem {n}", created_at="2026-01-01T00:00:00Z",
                       updated_at="2026-01-01T00:00:00Z", version=1, status="approved")  # fmt: skip

    basis = np.eye(4, dtype=np.float32)
    # Cell (tier 0): e0 and its near copy e1, and e2; a neighbour (tier 1): e3.
    vectors = np.stack([basis[0], (basis[0] + 0.01 * basis[1]) / np.linalg.norm(basis[0] + 0.01 * basis[1]),
                        basis[2], basis[3]])  # fmt: skip
    pool = SeedPool([example(n) for n in range(4)], vectors, np.array([0, 0, 0, 1]))
    for seed in range(20):
        chosen = [e.id for e in choose_seeds(pool, 2, np.random.default_rng(seed))]
        assert "e3" not in chosen and "e2" in chosen  # the cell is enough; never both near copies
        everything = [e.id for e in choose_seeds(pool, 4, np.random.default_rng(seed))]
        assert everything[-1] == "e3"  # the neighbour only after the whole cell


def test_templates_are_versioned_and_checked(tmp_path: Path) -> None:
    template = load_template()
    assert (template.id, template.version) == ("expand", 1)
    broken = tmp_path / "t.json"
    broken.write_text(json.dumps({"id": "x", "version": 2, "system": "s", "user": "Write $count about $subject"}))
    with pytest.raises(ConfigurationError, match="subject"):
        load_template(broken)
