"""GET /v1/stats, the agreement endpoint, the charts and `fewshot stats` on a hand-made bank whose counts are known."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from matplotlib.image import imread
from typer.testing import CliRunner

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.cli.main import app as cli
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.monitoring.charts import CHART_HEIGHT, CHART_WIDTH, CHARTS
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..banks import BANK, DISTINCT, KITES, SQUARES, build_bank


@pytest.fixture
def client(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", index_dir=tmp_path / "indexes", seed_on_empty=False,
        coverage_target=2, near_duplicate_threshold=0.9, fast_label_seconds=5,
    )  # fmt: skip
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with TestClient(create_app(settings, service, start="now")) as test_client:
        yield test_client
    bank.close()


def test_counts_gaps_balance_and_clusters_of_a_known_bank(
    client: TestClient, embedder: SentenceTransformerEmbedder
) -> None:
    ids = build_bank(client)
    stats = client.get("/v1/stats").json()
    assert stats["total"] == 10 + 5
    assert stats["by_status"] == {"approved": 6, "pending": 3 + 5, "rejected": 1}
    assert stats["by_source"] == {"curated": 5 + 5, "imported": 2, "llm": 3}
    assert stats["by_topic"] == {"": 1, "algebra": 6, "geometry": 5, "physics": 3}
    assert stats["by_difficulty"] == {"": 1, "1": 4 + 5, "2": 2, "3": 1, "5": 2}
    cells = {(c["topic"], c["difficulty"], c["source"], c["status"]): c["count"] for c in stats["cells"]}
    assert cells == {**{(t, d, src, st): n for t, d, src, st, n in BANK}, ("geometry", 1, "curated", "pending"): 5}

    # Target 2 approved per cell, over every topic in the bank x difficulties 1-5 (the no-topic example is no cell):
    # algebra has 3 approved at difficulty 1 only; physics 1 at 3 and 2 at 5; geometry none.
    gaps = {(g["topic"], g["difficulty"]): g["missing"] for g in stats["gaps"]}
    expected = {("algebra", d): 2 for d in (2, 3, 4, 5)} | {("physics", d): 2 for d in (1, 2, 4)}
    expected |= {("physics", 3): 1} | {("geometry", d): 2 for d in (1, 2, 3, 4, 5)}
    assert gaps == expected and stats["coverage_target"] == 2
    assert stats["gaps"][-1] == {"topic": "physics", "difficulty": 3, "approved": 1, "missing": 1}  # emptiest first

    def h(*counts: int) -> float:
        total = sum(counts)
        return -sum(c / total * math.log(c / total) for c in counts)

    approved, everything = stats["balance"]["approved"], stats["balance"]["all"]
    # Approved: algebra 3, physics 3, geometry 0 of 3 topics -> H(3,3)/ln 3; difficulties 1: 3, 3: 1, 5: 2 of 5.
    assert approved["examples"] == 6 and approved["topics"] == 3
    assert approved["topic_entropy"] == pytest.approx(h(3, 3) / math.log(3), abs=1e-4)  # = ln 2 / ln 3 = 0.6309
    assert approved["difficulty_entropy"] == pytest.approx(h(3, 1, 2) / math.log(5), abs=1e-4)  # = 0.6284
    # All live: algebra 6, geometry 5, physics 3 (no topic left out); difficulties 1: 9, 2: 2, 3: 1, 5: 2.
    assert everything["topic_entropy"] == pytest.approx(h(6, 5, 3) / math.log(3), abs=1e-4)
    assert everything["difficulty_entropy"] == pytest.approx(h(9, 2, 1, 2) / math.log(5), abs=1e-4)

    # The three kites form one cluster and the two squares another; nothing else is that close.
    vectors = embedder.embed(KITES + SQUARES + DISTINCT)
    similar = {(a, b) for a in range(15) for b in range(a + 1, 15) if float(vectors[a] @ vectors[b]) >= 0.9}
    assert similar == {(0, 1), (0, 2), (1, 2), (3, 4)}
    clusters = stats["near_duplicates"]
    assert (clusters["count"], clusters["examples"], clusters["threshold"]) == (2, 5, 0.9)
    assert [sorted(m["id"] for m in c["members"]) for c in clusters["largest"]] == [
        sorted(ids[t] for t in KITES),
        sorted(ids[t] for t in SQUARES),
    ]
    assert clusters["embedding_model"] == embedder.model_id

    # Label throughput: three labels today by two annotators on two examples.
    kite = ids[KITES[0]]
    square = ids[SQUARES[0]]
    for example, annotator in [(kite, "ann"), (kite, "bob"), (square, "ann"), (square, "bob")]:
        labelled = client.post(f"/v1/examples/{example}/labels", json={"annotator": annotator, "verdict": "approve"})
        assert labelled.status_code == 201
    # An undone label is no throughput (it was counted, unlike in the annotator's progress and the agreement).
    undone = labelled.json()["label"]["id"]
    assert client.delete(f"/v1/examples/{square}/labels/{undone}").status_code == 204
    after = client.get("/v1/stats").json()
    [today] = after["label_throughput"]
    assert (today["labels"], today["annotators"], today["examples"]) == (3, 2, 2) and after["labels_total"] == 3
    since = {"since": f"{today['day']}T00:00:00Z"}
    progress = [client.get("/v1/review/progress", params={**since, "annotator": a}).json() for a in ("ann", "bob")]
    assert sum(p["labelled"] for p in progress) == today["labels"]
    assert after["bank_revision"] > stats["bank_revision"]


def test_agreement_endpoint_reads_gold_examples_and_preferences(client: TestClient) -> None:
    made = client.post("/v1/examples", json={"examples": [
        {"input": "What is 6 x 7?", "output": "42", "metadata": {"gold": {"verdict": "approve", "score": 5}}},
        {"input": "What is 9 x 9?", "output": "80", "metadata": {"gold": {"verdict": "reject"}}},
        {"input": "Name the capital of Italy.", "output": "Rome"},
    ]}).json()["examples"]  # fmt: skip
    right, wrong, plain = (e["id"] for e in made)
    for example, annotator, verdict, score in [
        (right, "ann", "approve", 5), (wrong, "ann", "approve", 4), (plain, "ann", "approve", 4),
        (right, "bob", "approve", 4), (wrong, "bob", "reject", 1), (plain, "bob", "reject", 2),
    ]:  # fmt: skip
        body = {"annotator": annotator, "verdict": verdict, "score": score}
        assert client.post(f"/v1/examples/{example}/labels", json=body).status_code == 201
    pair = client.post("/v1/preferences", json={"prompt": "Hi", "response_a": "Hello", "response_b": "Yo"}).json()
    for shown in ("a", "a", "b"):
        client.post(
            f"/v1/preferences/{pair['id']}/labels", json={"annotator": "ann", "choice": "a", "shown_first": shown}
        )

    report = client.get("/v1/stats/agreement").json()
    by_name = {a["annotator"]: a for a in report["per_annotator"]}
    assert report["gold_examples"] == 2 and report["examples_labelled"] == 3
    assert (by_name["ann"]["gold_accuracy"], by_name["bob"]["gold_accuracy"]) == (0.5, 1.0)
    verdict = next(q for q in report["questions"] if q["question"] == "verdict")
    assert verdict["units"] == 3 and verdict["percent_agreement"] == pytest.approx(1 / 3, abs=1e-4)
    # Six labels posted back to back by two annotators: every label after each one's first comes within 5 s.
    assert report["fast_labels"]["count"] == 4 and by_name["ann"]["fast_labels"] == 2
    # "a" chosen three times, shown first twice.
    assert report["position_bias"] == {"decisive": 3, "first_wins": 2, "first_share": 0.6667, "p_value": 1.0}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk that follows the PNG signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_charts_are_pngs_of_the_fixed_size(client: TestClient) -> None:
    empty = client.get("/v1/stats/charts/topic_difficulty.png")  # an empty bank still gets a picture
    assert empty.status_code == 200 and png_size(empty.content) == (CHART_WIDTH, CHART_HEIGHT)
    build_bank(client)
    for name in CHARTS:
        for params in ({}, {"status": ["pending", "approved"]}):
            response = client.get(f"/v1/stats/charts/{name}.png", params=params)
            assert response.status_code == 200 and response.headers["content-type"] == "image/png"
            assert png_size(response.content) == (CHART_WIDTH, CHART_HEIGHT)
            pixels = imread(BytesIO(response.content), format="png")  # decodes as a whole
            assert pixels.shape[:2] == (CHART_HEIGHT, CHART_WIDTH) and pixels.std() > 0
    missing = client.get("/v1/stats/charts/pie.png")
    assert missing.status_code == 404 and "topic_difficulty" in missing.json()["error"]["message"]
    assert client.get("/v1/stats/charts/source_mix.png", params={"status": "lost"}).status_code == 422


def test_cli_stats_prints_the_same_figures(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    build_bank(client)
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FEWSHOT_COVERAGE_TARGET", "2")
    as_json = CliRunner().invoke(cli, ["stats", "--json"])
    assert as_json.exit_code == 0, as_json.output
    printed = json.loads(as_json.output)
    api = client.get("/v1/stats").json()
    assert printed["stats"]["cells"] == api["cells"] and printed["stats"]["gaps"] == api["gaps"]
    assert {q["question"] for q in printed["agreement"]["questions"]} == {"verdict", "score", "steps"}
    table = CliRunner().invoke(cli, ["stats"])
    assert table.exit_code == 0, table.output
    assert "15 live examples" in table.output and "Coverage gaps: 13 cell(s) under 2 approved" in table.output
    assert "2 cluster(s), 5 example(s)" in table.output and "Krippendorff" in table.output
