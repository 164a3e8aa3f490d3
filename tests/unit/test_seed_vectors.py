"""The seed bank's shipped embeddings: the model's own, used on a first start only once the model agrees."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.serving.seed_vectors import VECTORS_FILE, shipped_vectors, text_key
from fewshot_service.serving.seeding import seed_inputs

from ..conftest import ServiceFactory
from ..helpers import SEED_DIR


class Counting:
    """The session's real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner, self.model_id, self.dim, self.texts = inner, inner.model_id, inner.dim, 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


def stored_vectors(service: object, model_id: str) -> dict[str, np.ndarray]:
    bank = service.bank  # type: ignore[attr-defined]
    return {row.id: row.embedding for row in bank.iter_index_rows(model_id)}


def test_the_shipped_seed_embeddings_are_the_models_own_for_every_seed_input(
    embedder: SentenceTransformerEmbedder,
) -> None:
    """Fails when a seed example is added or edited without `python -m fewshot_service.serving.seed_vectors`."""
    texts = sorted(set(seed_inputs(SEED_DIR)))
    shipped = shipped_vectors(SEED_DIR, embedder.model_id)
    assert sorted(shipped) == sorted(text_key(text) for text in texts), "seed_examples/embeddings.npz is out of date"
    agreement = np.sum(embedder.embed(texts) * np.stack([shipped[text_key(text)] for text in texts]), axis=1)
    assert float(agreement.min()) >= 0.999
    assert shipped_vectors(SEED_DIR, "another/model") == {}  # another model's start embeds the bank itself


def test_a_first_start_stores_the_shipped_vectors_after_checking_a_sample(
    make_service: ServiceFactory, embedder: SentenceTransformerEmbedder
) -> None:
    counting = Counting(embedder)
    service = make_service(use=counting)
    report = service.start()
    assert report.seeded == 260 and report.embedded == 0  # nothing left to embed
    assert counting.texts <= 8  # the sample the model had to agree on, not 260 texts
    shipped = shipped_vectors(SEED_DIR, embedder.model_id)
    inputs = {e.id: e.input for e in service.bank.iter_examples()}
    stored = stored_vectors(service, embedder.model_id)
    assert len(stored) == 260
    assert all(np.array_equal(vector, shipped[text_key(inputs[i])]) for i, vector in stored.items())
    assert service.served().index.size == 260


@pytest.mark.parametrize("damage", ["vectors of other texts", "not an archive"])
def test_shipped_vectors_that_disagree_or_cannot_be_read_are_not_used(
    make_service: ServiceFactory,
    embedder: SentenceTransformerEmbedder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEED_DIR, seeds)
    if damage == "not an archive":
        (seeds / VECTORS_FILE).write_bytes(b"not an npz file")
    else:
        with np.load(SEED_DIR / VECTORS_FILE) as good:
            fields = dict(good)
        np.savez(seeds / VECTORS_FILE, **{**fields, "vectors": np.roll(fields["vectors"], 1, axis=0)})
    counting = Counting(embedder)
    with caplog.at_level(logging.WARNING, logger="fewshot_service.serving.seed_vectors"):
        report = make_service(seed_dir=seeds, use=counting).start()
    assert report.seeded == 260 and report.embedded == 260 and counting.texts >= 260
    assert "embedding the seed bank" in caplog.text
