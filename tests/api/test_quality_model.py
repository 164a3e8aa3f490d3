"""The quality model trained from curator labels, on a set where quality is learnable: the seed examples
(correct answers) labelled approve, and corrupted copies of them (wrong answer, missing answer, garbled
input, steps dropped) labelled reject. A fifth of the seed rows is held out unlabelled to measure it out of sample.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.cli.main import app as cli
from fewshot_service.curation.labels import LabelPolicy, check_label
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.models import ExampleCreate, LabelCreate
from fewshot_service.quality.service import QualityService
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..helpers import seed_rows

HOLD_OUT_EVERY = 5  # seed rows 0, 5, 10, ... stay unlabelled (pending) with their corrupted twins


def _wrong_number(found: re.Match[str]) -> str:
    value = found.group(0)
    return f"{float(value) * 1.7 + 3:.2f}" if "." in value else str(int(value) * 3 + 7)


def corrupt(row: dict[str, Any], kind: int, rng: random.Random, others: list[dict[str, Any]]) -> dict[str, Any]:
    """A bad copy of a good example; kind 0 wrong answer, 1 no answer, 2 garbled input, 3 steps dropped."""
    bad = dict(row, external_id=f"{row['external_id']}-bad")
    if kind == 0:  # the steps still lead to the right answer, the stated answer is another
        has_number = re.search(r"\d", row["output"])
        bad["output"] = (
            re.sub(r"\d+(?:\.\d+)?", _wrong_number, row["output"]) if has_number else rng.choice(others)["output"]
        )
    elif kind == 1:
        bad["output"] = ""
    elif kind == 2:
        words = row["input"].split()
        rng.shuffle(words)
        bad["input"] = " ".join(w if rng.random() > 0.3 else w[::-1] + "#@" for w in words)
    else:
        bad["steps"] = None
        bad["output"] = row["output"][: max(1, len(row["output"]) // 3)]
    return bad


@dataclass
class LabelledBank:
    client: TestClient
    bank: SqlBank
    settings: Settings
    revision: int  # after the last label
    held_out: dict[str, int]  # id -> 1 (clean) or 0 (corrupted), unlabelled


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[LabelledBank]:
    root = tmp_path_factory.mktemp("quality")
    settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_on_empty=False)
    bank = SqlBank(settings.resolved_database_url())
    bank.create_schema()
    rng = random.Random(6)
    rows = seed_rows()
    pairs = [(row, corrupt(row, n % 4, rng, rows)) for n, row in enumerate(rows)]
    # Every source is "llm", clean or not: the source must not give the label away.
    records = [ExampleCreate(**dict(r, source="llm", status="pending")) for pair in pairs for r in pair]
    texts = sorted({r.input for r in records})  # a corrupted answer keeps the input: embed each text once
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))
    created = bank.insert(records, np.stack([vectors[r.input] for r in records]), embedder.model_id, "test")
    held_out: dict[str, int] = {}
    policy = LabelPolicy()
    for n in range(len(pairs)):
        good, bad = created[2 * n], created[2 * n + 1]
        if n % HOLD_OUT_EVERY == 0:
            held_out |= {good.id: 1, bad.id: 0}
            continue
        for example, verdict, score in ((good, "approve", 4), (bad, "reject", 1)):
            label = LabelCreate(annotator="cara", verdict=verdict, score=score)
            bank.add_label(example.id, label, check=check_label, policy=policy.decide, actor="cara")
    revision = bank.revision()
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with TestClient(create_app(settings, service, start="now")) as client:
        yield LabelledBank(client, bank, settings, revision, held_out)
    bank.close()


def test_the_model_learns_quality_and_scores_the_bank(labelled: LabelledBank) -> None:
    client = labelled.client
    trained = client.post("/v1/admin/quality/train")
    assert trained.status_code == 200, trained.text
    result = trained.json()
    metrics = result["model"]["metrics"]
    # 208 labelled seed rows and their 208 corrupted copies; 5-fold cross-validated, out-of-fold predictions.
    assert (metrics["examples"], metrics["good"], metrics["bad"], metrics["cv_folds"]) == (416, 208, 208, 5)
    assert metrics["roc_auc"] >= 0.8, metrics
    assert 0 <= metrics["brier"] < 0.25  # better than always answering 0.5
    assert sum(b["examples"] for b in metrics["calibration"]) == 416
    assert all(0 <= b["mean_predicted"] <= 1 and 0 <= b["observed_good"] <= 1 for b in metrics["calibration"])
    assert result["scored"] == 520 and result["changed"] == 520

    # Persisted with the bank revision it saw, and served back.
    model_id = result["model_id"]
    sidecar = json.loads((labelled.settings.data_dir / "quality_model" / model_id / "model.json").read_text())
    assert sidecar["bank_revision"] == labelled.revision == result["model"]["bank_revision"]
    assert (labelled.settings.data_dir / "quality_model" / model_id / "model.joblib").is_file()
    assert client.get("/v1/admin/quality").json()["model_id"] == model_id

    # Out of sample: the 104 held-out examples (52 clean, 52 corrupted) were never labelled.
    scores = client.get("/v1/admin/quality/scores", params={"status": "pending", "limit": 1000}).json()
    assert {s["id"] for s in scores} == set(labelled.held_out)
    held_out_auc = roc_auc_score([labelled.held_out[s["id"]] for s in scores], [s["predicted_quality"] for s in scores])
    assert held_out_auc >= 0.8
    # Most uncertain first, and the review queue hands out the same one first.
    distances = [abs(s["predicted_quality"] - 0.5) for s in scores]
    assert distances == sorted(distances)
    item = client.get("/v1/review/next", params={"annotator": "newcomer"}).json()
    assert item["example"]["id"] == scores[0]["id"] and item["reason"] == "pending_llm"

    # Scoring again with the same model changes nothing; selection still works over the rescored index.
    assert client.post("/v1/admin/quality/score").json() == {"model_id": model_id, "scored": 520, "changed": 0}
    assert client.post("/v1/select", json={"prompt": "Solve 2x + 3 = 11", "k": 2}).status_code == 200

    # /v1/select filters on the model's score inside the search: only pending examples scored >= 0.7.
    predicted = {s["id"]: s["predicted_quality"] for s in scores}
    confident = {i for i, p in predicted.items() if p >= 0.7}
    filters = {"statuses": ["pending"], "min_predicted_quality": 0.7}
    picked = client.post("/v1/select", json={"prompt": "Solve 2x + 3 = 11", "k": 8, "filters": filters}).json()
    assert {e["id"] for e in picked["examples"]} <= confident and len(picked["examples"]) == min(8, len(confident))

    # Candidates not in the bank yet (LLM expansion's hook) are scored on the same scale.
    scorer = QualityService(client.app.state.service).scorer()  # type: ignore[attr-defined]
    steps = ["Subtract 3 from both sides: 2x = 8.", "Divide by 2: x = 4."]
    good = ExampleCreate(input="Solve 2x + 3 = 11 for x.", output="x = 4", steps=steps, source="llm")
    bad = good.model_copy(update={"output": "x = 19"})
    [p_good, p_bad] = scorer([good, bad]) or []
    assert 0 <= p_bad < p_good <= 1
    print(f"quality model: cross-validated ROC-AUC {metrics['roc_auc']}, held-out ROC-AUC {held_out_auc:.4f}")


@pytest.fixture
def small(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEWSHOT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("FEWSHOT_SEED_ON_EMPTY", "false")
    settings = Settings()
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with TestClient(create_app(settings, service, start="now")) as client:
        yield client
    bank.close()


def test_training_refuses_too_few_labels(small: TestClient) -> None:
    assert small.get("/v1/admin/quality").json()["error"]["code"] == "no_quality_model"
    assert small.post("/v1/admin/quality/score").status_code == 404
    made = small.post("/v1/examples", json={"examples": [{"input": f"What is {n} plus {n + 7}?"} for n in range(12)]})
    for n, example in enumerate(made.json()["examples"]):
        verdict = "approve" if n < 10 else "reject"
        small.post(f"/v1/examples/{example['id']}/labels", json={"annotator": "ann", "verdict": verdict})
    refused = small.post("/v1/admin/quality/train")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "not_enough_labels"
    assert "at least 10 labelled examples of each class" in error["message"] and "8 more bad" in error["message"]
    settings: Settings = small.app.state.settings  # type: ignore[attr-defined]
    assert not (settings.data_dir / "quality_model").exists()

    result = CliRunner().invoke(cli, ["quality", "train"])
    assert result.exit_code == 1 and "8 more bad" in result.output
