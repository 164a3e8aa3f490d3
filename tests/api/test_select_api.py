"""POST /v1/select over the real seed bank: filters, diversity, leakage guard, ordering, bad input."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..helpers import seed_rows, write_jsonl

# One clear prompt per seed topic, none copied from the bank.
TOPIC_PROMPTS = {
    "arithmetic": "A delivery van drives 240 km in 4 hours. What is its average speed?",
    "algebra": "Solve for y: 5y - 7 = 3y + 9.",
    "geometry": "What is the area of a triangle with base 10 cm and height 7 cm?",
    "probability": "If you roll two fair dice, what is the chance that both show an even number?",
    "physics": "A ball is dropped from rest; how fast is it moving after 3 seconds of free fall?",
    "chemistry": "How many moles are in 36 grams of water?",
    "programming": "What does this Python code print: print(len([x for x in range(10) if x % 3 == 0]))",
    "unit_conversion": "How many centimetres are in 2.5 feet?",
}


def varied_rows() -> list[dict[str, Any]]:
    """The seed bank with sources, statuses and quality spread deterministically, so every filter bites."""
    rows = []
    for n, row in enumerate(seed_rows()):
        row = dict(row, source=("curated", "llm", "imported")[n % 3])
        row["status"] = "pending" if n % 7 == 0 else "rejected" if n % 11 == 0 else "approved"
        row["quality"] = float(n % 5 + 1) if n % 2 == 0 else None
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("varied")
    write_jsonl(root / "seed" / "varied.jsonl", varied_rows())
    settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=root / "seed")
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with TestClient(create_app(settings, service, start="now")) as client:
        yield client
    bank.close()


def select(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/select", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def matches(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    """The filter semantics written out plainly, to check the index against."""
    if row["status"] not in filters.get("statuses", ["approved"]):
        return False
    if "topics" in filters and row["topic"] not in filters["topics"]:
        return False
    if "sources" in filters and row["source"] not in filters["sources"]:
        return False
    if "difficulty_min" in filters and (row["difficulty"] or 0) < filters["difficulty_min"]:
        return False
    if "difficulty_max" in filters and (row["difficulty"] is None or row["difficulty"] > filters["difficulty_max"]):
        return False
    if "min_quality" in filters and (row["quality"] is None or row["quality"] < filters["min_quality"]):
        return False
    return "tags" not in filters or bool(set(filters["tags"]) & set(row["tags"]))


def common_tag() -> str:
    counts: dict[str, int] = {}
    for row in seed_rows():
        for tag in row["tags"]:
            counts[tag] = counts.get(tag, 0) + 1
    return max(counts, key=lambda t: counts[t])


FILTER_CASES: list[dict[str, Any]] = [
    {},
    {"topics": ["probability"]},
    {"topics": ["geometry", "physics"], "difficulty_min": 4},
    {"difficulty_max": 2},
    {"sources": ["llm"]},
    {"tags": [common_tag()]},
    {"min_quality": 4},
    {"statuses": ["pending"]},
    {"statuses": ["approved", "rejected"], "sources": ["imported"]},
    {"topics": ["arithmetic"], "sources": ["curated"], "min_quality": 2, "difficulty_min": 2, "difficulty_max": 4},
    {"topics": ["no such topic"]},
]


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: ",".join(f) or "default")
@pytest.mark.parametrize("strategy", ["knn", "mmr", "stratified"])
def test_every_filter_is_honoured_and_k_returned_when_k_match(
    varied: TestClient, filters: dict[str, Any], strategy: str
) -> None:
    rows = varied_rows()
    allowed = {r["external_id"] for r in rows if matches(r, filters)}
    for prompt in itertools.islice(TOPIC_PROMPTS.values(), 4):
        result = select(varied, prompt=prompt, k=6, strategy=strategy, filters=filters)
        returned = [e["external_id"] for e in result["examples"]]
        assert set(returned) <= allowed
        assert len(returned) == len(set(returned)) == min(6, len(allowed))


def test_a_cell_holding_under_three_percent_of_the_bank_still_yields_k(seed_client: TestClient) -> None:
    rows = seed_rows()
    rare = {r["external_id"] for r in rows if r["topic"] == "logic" and r["difficulty"] == 5}
    assert 4 <= len(rare) <= 0.03 * len(rows)
    filters = {"topics": ["logic"], "difficulty_min": 5}
    # The prompt is about arithmetic: none of its nearest 50 examples is a hard logic puzzle.
    nearest = select(seed_client, prompt=TOPIC_PROMPTS["arithmetic"], k=50, strategy="knn")["examples"]
    assert not {e["external_id"] for e in nearest} & rare
    for strategy in ("knn", "mmr", "stratified"):
        result = select(seed_client, prompt=TOPIC_PROMPTS["arithmetic"], k=4, strategy=strategy, filters=filters)
        assert len(result["examples"]) == 4 and {e["external_id"] for e in result["examples"]} <= rare


def test_exclude_ids_are_never_returned(seed_client: TestClient) -> None:
    first = select(seed_client, prompt=TOPIC_PROMPTS["geometry"], k=4)
    excluded = [e["id"] for e in first["examples"]]
    second = select(seed_client, prompt=TOPIC_PROMPTS["geometry"], k=4, exclude_ids=excluded)
    assert len(second["examples"]) == 4 and not {e["id"] for e in second["examples"]} & set(excluded)


def mean_pairwise_similarity(embedder: SentenceTransformerEmbedder, texts: list[str]) -> float:
    vectors = embedder.embed(texts)
    sims = vectors @ vectors.T
    upper = np.triu_indices(len(texts), k=1)
    return float(sims[upper].mean())


@pytest.mark.parametrize("strategy", ["mmr", "stratified"])
def test_diversifying_is_less_redundant_than_knn_and_stays_on_topic(
    seed_client: TestClient, embedder: SentenceTransformerEmbedder, strategy: str
) -> None:
    knn_redundancy, diverse_redundancy, on_topic = [], [], []
    for topic, prompt in TOPIC_PROMPTS.items():
        knn = select(seed_client, prompt=prompt, k=4, strategy="knn")["examples"]
        diverse = select(seed_client, prompt=prompt, k=4, strategy=strategy)["examples"]
        knn_redundancy.append(mean_pairwise_similarity(embedder, [e["input"] for e in knn]))
        diverse_redundancy.append(mean_pairwise_similarity(embedder, [e["input"] for e in diverse]))
        on_topic.append(np.mean([e["topic"] == topic for e in diverse]))
    assert np.mean(diverse_redundancy) < np.mean(knn_redundancy)
    assert np.mean(on_topic) >= 0.75


def test_the_default_keeps_every_topic_similarity_search_shows_and_names_the_vote(seed_client: TestClient) -> None:
    for prompt in TOPIC_PROMPTS.values():
        nearest = select(seed_client, prompt=prompt, k=4, strategy="knn", topic_preference=0)["examples"]
        default = select(seed_client, prompt=prompt, k=4)
        assert {e["topic"] for e in nearest} <= {e["topic"] for e in default["examples"]}, prompt
        # The estimated topic is the vote that seated the picks: no topic has more of them, and they say so.
        leader = default["estimated_topic"]
        counts = Counter(e["topic"] for e in default["examples"])
        assert counts[leader] == max(counts.values()), prompt
        assert all(f"from {leader} (" in e["why"]["reason"] for e in default["examples"] if e["topic"] == leader)


def test_default_strategy_is_stratified_and_diversity_is_honoured(seed_client: TestClient) -> None:
    default = select(seed_client, prompt=TOPIC_PROMPTS["algebra"])
    assert default["strategy"] == "stratified" and len(default["examples"]) == 4 and default["diversity"] == 0.6
    pure = select(seed_client, prompt=TOPIC_PROMPTS["algebra"], strategy="mmr", diversity=0.0)
    knn = select(seed_client, prompt=TOPIC_PROMPTS["algebra"], strategy="knn")
    assert {e["id"] for e in pure["examples"]} == {e["id"] for e in knn["examples"]}
    # The response says which trade-off was applied, and none for a strategy that has no such setting.
    assert pure["diversity"] == 0.0 and knn["diversity"] is None


def test_leakage_guard_drops_exact_and_near_copies_of_the_prompt(
    seed_client: TestClient, embedder: SentenceTransformerEmbedder
) -> None:
    target = next(r for r in seed_rows() if r["topic"] == "arithmetic" and len(r["input"]) > 60)
    near = target["input"].replace(".", "!").replace("?", " ?").upper()
    vectors = embedder.embed([target["input"], near])
    assert float(vectors[0] @ vectors[1]) >= 0.97  # the near copy really is one
    for prompt in (target["input"], near):
        result = select(seed_client, prompt=prompt, k=10, strategy="knn")
        assert target["external_id"] not in {e["external_id"] for e in result["examples"]}
        assert len(result["examples"]) == 10
        assert all(e["score"] < 0.97 for e in result["examples"])


def test_order_options(seed_client: TestClient) -> None:
    prompt = TOPIC_PROMPTS["physics"]
    last = select(seed_client, prompt=prompt, k=5)["examples"]
    first = select(seed_client, prompt=prompt, k=5, order="most_similar_first")["examples"]
    assert [e["score"] for e in last] == sorted(e["score"] for e in last)
    assert [e["id"] for e in first] == [e["id"] for e in reversed(last)]


def test_response_carries_the_contract_fields(seed_client: TestClient) -> None:
    result = select(seed_client, prompt=TOPIC_PROMPTS["chemistry"], k=3)
    assert set(result) >= {"examples", "strategy", "index_version", "took_ms"}
    for example in result["examples"]:
        assert set(example) >= {"id", "external_id", "input", "output", "steps", "topic", "difficulty", "score"}
        assert example["status"] == "approved" and 0 < example["score"] <= 1


BAD_BODIES: list[tuple[Any, int, str]] = [
    ({"prompt": ""}, 422, "prompt"),
    ({"prompt": "  \n\t "}, 422, "prompt"),
    ({"prompt": "x" * 8001}, 422, "prompt"),
    ({"k": 3}, 422, "prompt"),
    ({"prompt": "x", "k": 0}, 422, "k"),
    ({"prompt": "x", "k": 51}, 422, "k"),
    ({"prompt": "x", "k": "four"}, 422, "k"),
    ({"prompt": "x", "filters": {"difficulty_min": 0}}, 422, "filters.difficulty_min"),
    ({"prompt": "x", "filters": {"difficulty_max": 6}}, 422, "filters.difficulty_max"),
    ({"prompt": "x", "filters": {"difficulty_min": 4, "difficulty_max": 2}}, 422, "filters.difficulty_max"),
    ({"prompt": "x", "strategy": "telepathy"}, 422, "strategy"),
    ({"prompt": "x", "diversity": 1.5}, 422, "diversity"),
    ({"prompt": "x", "order": "random"}, 422, "order"),
    ({"prompt": "x", "temperature": 0.2}, 422, "temperature"),
    ({"prompt": "x", "filters": {"topic": "algebra"}}, 422, "filters.topic"),
    ({"prompt": "x", "filters": {"statuses": ["maybe"]}}, 422, "filters.statuses.0"),
    (["prompt"], 422, "body"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
def test_bad_input_gets_a_4xx_naming_the_field(seed_client: TestClient, body: Any, status: int, field: str) -> None:
    response = seed_client.post("/v1/select", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["code"] and error["message"]


def test_malformed_json_is_a_400(seed_client: TestClient) -> None:
    response = seed_client.post("/v1/select", content=b'{"prompt": "x",', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert seed_client.post("/v1/select").json()["error"]["field"] == "body"


def test_bodies_over_one_mebibyte_are_refused_with_413(seed_client: TestClient) -> None:
    big = b'{"prompt": "' + b"x" * (1 << 20) + b'"}'
    announced = seed_client.post("/v1/select", content=big, headers={"content-type": "application/json"})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = seed_client.post("/v1/select", content=chunks(), headers={"content-type": "application/json"})
    for response in (announced, streamed):
        assert response.status_code == 413
        assert response.json()["error"] == {
            "code": "payload_too_large",
            "message": "the request body exceeds 1048576 bytes",
            "field": "body",
        }


def test_readiness_follows_start_up(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    settings = Settings(data_dir=tmp_path / "d", index_dir=tmp_path / "i", seed_on_empty=False)
    service = FewshotService(
        settings, SqlBank(settings.resolved_database_url()), lambda: embedder, IndexStore(tmp_path / "i")
    )
    with TestClient(create_app(settings, service, start="no")) as client:
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["error"]["code"] == "not_ready"
        assert client.post("/v1/select", json={"prompt": "hello"}).status_code == 503
        service.start()
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["examples"] == 0
        assert client.post("/v1/select", json={"prompt": "hello"}).json()["examples"] == []
    service.bank.close()


def test_openapi_docs_are_served(seed_client: TestClient) -> None:
    assert seed_client.get("/docs").status_code == 200
    assert "/v1/select" in seed_client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("strategy", ["stratified", "knn", "mmr", "dpp", "coverage", "hybrid", "random"])
def test_every_strategy_answers_k_distinct_examples_with_reasons(seed_client: TestClient, strategy: str) -> None:
    result = select(seed_client, prompt=TOPIC_PROMPTS["probability"], k=5, strategy=strategy, seed=3)
    examples = result["examples"]
    assert result["strategy"] == strategy and len({e["id"] for e in examples}) == 5
    for example in examples:
        why = example["why"]
        assert why["relevance"] == example["score"] and why["reason"]
    if strategy != "random":
        assert sum(e["topic"] == "probability" for e in examples) >= 3


@pytest.mark.parametrize("strategy", ["stratified", "knn", "mmr", "dpp", "coverage", "hybrid", "random"])
def test_every_strategy_answers_an_empty_list_when_nothing_matches_the_filters(
    seed_client: TestClient, strategy: str
) -> None:
    body = {"prompt": TOPIC_PROMPTS["probability"], "strategy": strategy, "filters": {"topics": ["no such topic"]}}
    response = seed_client.post("/v1/select", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["examples"] == []


def test_topic_preference_estimates_the_topic_and_keeps_picks_on_it(seed_client: TestClient) -> None:
    body = {"prompt": "A bakery sells muffins at 4 for $6. How much do 10 muffins cost?", "k": 4, "diversity": 0.5}
    plain = select(seed_client, **body, topic_preference=0.0)
    preferred = select(seed_client, **body, topic_preference=0.5)
    assert preferred["estimated_topic"] == "arithmetic"
    on_topic = [sum(e["topic"] == "arithmetic" for e in r["examples"]) for r in (plain, preferred)]
    assert on_topic[1] == 4 and on_topic[1] >= on_topic[0]
    assert all(e["why"]["topic_match"] for e in preferred["examples"])


def test_difficulty_target_and_match(seed_client: TestClient) -> None:
    prompt = TOPIC_PROMPTS["algebra"]
    hard = select(seed_client, prompt=prompt, k=4, strategy="knn", difficulty_target=5)["examples"]
    easy = select(seed_client, prompt=prompt, k=4, strategy="knn", difficulty_target=1)["examples"]
    assert np.mean([e["difficulty"] for e in hard]) > np.mean([e["difficulty"] for e in easy]) + 1
    assert all(e["why"]["difficulty_gap"] is not None for e in hard)
    matched = select(seed_client, prompt=prompt, k=4, difficulty="match")
    assert 1 <= matched["difficulty_target"] <= 5
    both = seed_client.post("/v1/select", json={"prompt": prompt, "difficulty_target": 2, "difficulty": "match"})
    assert both.status_code == 422 and both.json()["error"]["field"] == "difficulty"


def test_token_budget_is_respected_with_the_models_tokenizer(
    seed_client: TestClient, embedder: SentenceTransformerEmbedder
) -> None:
    result = select(seed_client, prompt=TOPIC_PROMPTS["geometry"], k=6, max_tokens=120)
    assert 0 < result["tokens"] <= 120
    counted = 0
    for example in result["examples"]:
        text = "\n".join([example["input"], *(example["steps"] or []), example["output"]])
        [tokens] = embedder.count_tokens([text])
        assert example["why"]["tokens"] == tokens
        counted += tokens
    assert counted == result["tokens"]
    unbounded = select(seed_client, prompt=TOPIC_PROMPTS["geometry"], k=6)
    assert len(unbounded["examples"]) == 6 and unbounded["tokens"] is None


def test_tiktoken_is_refused_clearly_when_unavailable(seed_client: TestClient) -> None:
    response = seed_client.post("/v1/select", json={"prompt": "x y z", "max_tokens": 100, "tokenizer": "tiktoken"})
    try:
        import tiktoken

        tiktoken.get_encoding("cl100k_base")
    except Exception:
        assert response.status_code == 422 and response.json()["error"]["field"] == "tokenizer"
    else:  # pragma: no cover - only where tiktoken and its encoding are on disk
        assert response.status_code == 200


def test_formats_render_the_chosen_examples(seed_client: TestClient) -> None:
    prompt = TOPIC_PROMPTS["chemistry"]
    messages = select(seed_client, prompt=prompt, k=2, format="messages")
    assert [m["role"] for m in messages["messages"]] == ["user", "assistant", "user", "assistant"]
    assert messages["messages"][0]["content"] == messages["examples"][0]["input"]
    text = select(seed_client, prompt=prompt, k=2, format="text", template="Q: {input}\nA: {output}")
    assert text["text"].split("\n\n")[0] == f"Q: {text['examples'][0]['input']}\nA: {text['examples'][0]['output']}"
    bad = seed_client.post("/v1/select", json={"prompt": prompt, "format": "text", "template": "{question}"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "template"


def test_ascending_difficulty_order(seed_client: TestClient) -> None:
    result = select(seed_client, prompt=TOPIC_PROMPTS["physics"], k=5, order="ascending_difficulty")
    levels = [e["difficulty"] for e in result["examples"]]
    assert levels == sorted(levels)


def test_fields_cut_each_example_to_what_was_asked_and_its_id(seed_client: TestClient) -> None:
    prompt = TOPIC_PROMPTS["algebra"]
    full = select(seed_client, prompt=prompt, k=4, seed=1)
    cut = select(seed_client, prompt=prompt, k=4, seed=1, fields=["input", "output"])
    assert [e["id"] for e in cut["examples"]] == [e["id"] for e in full["examples"]]
    for whole, part in zip(full["examples"], cut["examples"], strict=True):
        assert part == {"id": whole["id"], "input": whole["input"], "output": whole["output"]}
    assert cut["selection_id"] and cut["strategy"] == full["strategy"]  # the rest of the answer is whole
    only_ids = select(seed_client, prompt=prompt, k=4, seed=1, fields=[])
    assert only_ids["examples"] == [{"id": e["id"]} for e in full["examples"]]
    why = select(seed_client, prompt=prompt, k=2, fields=["score", "why"])
    assert all(set(e) == {"id", "score", "why"} and e["why"]["reason"] for e in why["examples"])


def test_fields_leave_the_rendered_prompt_whole(seed_client: TestClient) -> None:
    prompt = TOPIC_PROMPTS["chemistry"]
    whole = select(seed_client, prompt=prompt, k=2, format="messages")
    cut = select(seed_client, prompt=prompt, k=2, format="messages", fields=[])
    assert cut["messages"] == whole["messages"] and cut["examples"] == [{"id": e["id"]} for e in whole["examples"]]


@pytest.mark.parametrize("fields", [["answer"], ["id"], "input", [["input"]]])
def test_unknown_fields_are_a_422_naming_fields(seed_client: TestClient, fields: Any) -> None:
    response = seed_client.post("/v1/select", json={"prompt": "x", "fields": fields})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"].startswith("fields")


def test_the_short_way_and_the_standard_way_answer_alike(seed_client: TestClient) -> None:
    """A well-formed select skips FastAPI's dependency machinery (routes/select.py); a query parameter sends
    the same request the standard way. Both must give the same answer."""
    body = {"prompt": TOPIC_PROMPTS["probability"], "k": 4, "seed": 3, "fields": ["input", "why", "score"]}
    short = seed_client.post("/v1/select", json=body)
    standard = seed_client.post("/v1/select?via=standard", json=body)
    charset = seed_client.post(
        "/v1/select", content=json.dumps(body).encode(), headers={"content-type": "application/json; charset=utf-8"}
    )
    assert short.status_code == standard.status_code == charset.status_code == 200
    answers = [r.json() for r in (short, standard, charset)]
    for answer in answers:
        del answer["took_ms"], answer["selection_id"]
    assert answers[0] == answers[1] == answers[2]
