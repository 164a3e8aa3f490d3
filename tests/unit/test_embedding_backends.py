"""The ONNX Runtime backend: exported from the real model here, used only when it agrees with PyTorch."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fewshot_service.embedding import (
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
    measure_agreement,
)
from fewshot_service.embedding.onnx_runtime import QUIET_SECONDS
from fewshot_service.embedding.sentence_transformer import resolve_model
from fewshot_service.errors import ConfigurationError, EmbeddingError
from fewshot_service.serving.seeding import seed_inputs
from fewshot_service.settings import PACKAGED_MODEL

from ..helpers import SEED_DIR

LONG_TEXT = " ".join(f"word{i} and then some more text" for i in range(200))  # far over 256 tokens


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache: Path) -> OnnxEmbedder:
    embedder = load_embedder(PACKAGED_MODEL, "onnx", onnx_cache, seed_inputs(SEED_DIR))
    assert isinstance(embedder, OnnxEmbedder)
    return embedder


def test_onnx_reproduces_the_reference_model(
    onnx_embedder: OnnxEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    # The whole seed bank was compared when the export was checked (the verdict test reads that); here a
    # sample of it and texts that test truncation, a one-character input and non-ASCII text.
    texts = [*seed_inputs(SEED_DIR)[::10], LONG_TEXT, "x", "Émile's café: 3 × 4 = ?"]
    agreement = measure_agreement(embedder, onnx_embedder, texts)
    assert agreement.min_cosine >= 0.9999, agreement
    assert onnx_embedder.model_id == embedder.model_id
    assert onnx_embedder.dim == embedder.dim
    vectors = onnx_embedder.embed(texts)
    # Normalised, and in the order asked although batches run sorted by length.
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[-2], onnx_embedder.embed(["x"])[0], atol=1e-5)
    assert onnx_embedder.embed([]).shape == (0, embedder.dim)


def test_a_lone_call_and_calls_side_by_side_embed_alike(onnx_cache: Path) -> None:
    # A call that starts alone runs on the spinning session; one that starts while another runs, on the
    # session the lanes share (onnx_runtime.OnnxEmbedder._session_for). Both must give the same vectors.
    embedder = load_embedder(PACKAGED_MODEL, "onnx", onnx_cache, seed_inputs(SEED_DIR), lanes=2)
    assert isinstance(embedder, OnnxEmbedder)
    # The two differ only in how their threads wait and how many there are: the lanes split the cores.
    alone, shared = embedder._alone.get_session_options(), embedder._shared.get_session_options()
    assert alone.get_session_config_entry("session.force_spinning_stop") == "1"
    assert shared.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert shared.intra_op_num_threads == max(1, len(os.sched_getaffinity(0)) // 2)
    prompt = "How many apples are left if Tom eats three of twelve?"
    before = embedder.alone_calls
    lone = embedder.embed([prompt])[0]
    assert embedder.alone_calls == before + 1

    long_batch = [f"{LONG_TEXT} {n}" for n in range(32)]  # one model call of a second or more
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(embedder.embed, long_batch)
        deadline = time.monotonic() + 60
        while embedder.running == 0 and not first.done() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert embedder.running == 1, "the long call did not start"
        alone_before = embedder.alone_calls
        beside = embedder.embed([prompt])[0]
        still_running = not first.done()
        first.result()
    assert still_running, "the long call ended before the second one; it proves nothing"
    assert embedder.alone_calls == alone_before  # the second call did not start alone
    assert np.allclose(lone, beside, atol=1e-5)
    # Calls overlapped a moment ago, as they do under load: a call that happens to start alone now does not
    # spin (it would spin against the next overlapping call). After a quiet spell, a lone call spins again.
    assert np.allclose(embedder.embed([prompt])[0], lone, atol=1e-5)
    assert embedder.alone_calls == alone_before
    time.sleep(QUIET_SECONDS + 0.05)
    assert np.allclose(embedder.embed([prompt])[0], lone, atol=1e-5)
    assert embedder.alone_calls == alone_before + 1


def test_onnx_counts_tokens_like_the_reference(
    onnx_embedder: OnnxEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    texts = ["How many apples are left?", LONG_TEXT, ""]
    assert onnx_embedder.count_tokens(texts) == embedder.count_tokens(texts)
    assert onnx_embedder.count_tokens([LONG_TEXT])[0] > 256  # budgets count what the LLM will read


def test_a_checked_export_is_reused_without_exporting_again(onnx_embedder: OnnxEmbedder, onnx_cache: Path) -> None:
    (folder,) = [p for p in onnx_cache.iterdir() if not p.name.startswith(".")]
    model_file = folder / "model.onnx"
    before = model_file.stat().st_mtime_ns
    verdict = json.loads((folder / "agreement.json").read_text())
    assert verdict["texts"] == len(seed_inputs(SEED_DIR)) and verdict["min_cosine"] >= 0.99

    again = load_embedder(PACKAGED_MODEL, "auto", onnx_cache, seed_inputs(SEED_DIR))
    assert isinstance(again, OnnxEmbedder)
    assert model_file.stat().st_mtime_ns == before
    assert np.allclose(again.embed(["a question"]), onnx_embedder.embed(["a question"]))


def test_torch_backend_is_the_reference(tmp_path: Path) -> None:
    chosen = load_embedder(PACKAGED_MODEL, "torch", tmp_path, seed_inputs(SEED_DIR))
    assert isinstance(chosen, SentenceTransformerEmbedder)
    assert not any(tmp_path.iterdir())  # nothing exported


def test_unknown_backend_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        load_embedder(PACKAGED_MODEL, "tensorrt", tmp_path, ["a"])


@pytest.fixture(scope="module")
def cls_pooled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model with CLS pooling: a pipeline the ONNX export (mean pooling) does not reproduce."""
    _, location = resolve_model(PACKAGED_MODEL)
    target = tmp_path_factory.mktemp("cls-model") / "model"
    shutil.copytree(location, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    for weights in Path(location).glob("*.safetensors"):
        (target / weights.name).symlink_to(weights)
    pooling = json.loads((target / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return target


def test_a_disagreeing_export_is_refused(cls_pooled_model: Path, tmp_path: Path) -> None:
    texts = seed_inputs(SEED_DIR)[:40]
    # auto falls back to the reference model and remembers the verdict ...
    chosen = load_embedder(str(cls_pooled_model), "auto", tmp_path, texts)
    assert isinstance(chosen, SentenceTransformerEmbedder)
    (verdict_file,) = tmp_path.glob("*/agreement.json")
    assert json.loads(verdict_file.read_text())["min_cosine"] < 0.99
    # ... and onnx, asked for explicitly, is an error naming the disagreement.
    with pytest.raises(EmbeddingError, match="disagree"):
        load_embedder(str(cls_pooled_model), "onnx", tmp_path, texts)


def test_two_processes_exporting_at_once_both_end_up_with_a_working_model(tmp_path: Path) -> None:
    """Replicas started together on a new machine export side by side; neither pulls the other's files away.
    (Threads here: the export folder's hand-over is the same as between processes.)"""
    from concurrent.futures import ThreadPoolExecutor

    texts = seed_inputs(SEED_DIR)[:8]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(load_embedder, PACKAGED_MODEL, "onnx", tmp_path, texts) for _ in range(2)]
        embedders = [f.result(timeout=600) for f in futures]
    first, second = (e.embed(["how many marbles are left?"])[0] for e in embedders)
    assert np.allclose(first, second, atol=1e-5)
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1  # one export kept, no staging
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_onnx_gives_each_text_the_same_vector_whatever_it_is_batched_with(onnx_embedder: OnnxEmbedder) -> None:
    # Batches are cut by length and padded to their longest text: a short text beside a long one, or many
    # texts of one length, must get the vector it gets alone (padding is masked out of the mean).
    texts = ["x", "How many apples are left?", LONG_TEXT, *seed_inputs(SEED_DIR)[:40], "How many apples are left?"]
    together = onnx_embedder.embed(texts)
    alone = np.stack([onnx_embedder.embed([text])[0] for text in texts])
    assert np.allclose(together, alone, atol=1e-5)
    cap, onnx_embedder.batch_size = onnx_embedder.batch_size, 3  # a small cap: more calls, the same vectors
    try:
        assert np.allclose(onnx_embedder.embed(texts), alone, atol=1e-5)
    finally:
        onnx_embedder.batch_size = cap


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not using ONNX Runtime" in r.getMessage()]


def test_auto_embeds_with_pytorch_when_the_cache_cannot_be_written(caplog: pytest.LogCaptureFixture) -> None:
    unwritable = Path("/dev/null/onnx")  # a file where a folder should be: no user can create it
    with caplog.at_level(logging.WARNING, logger="fewshot_service.embedding"):
        chosen = load_embedder(PACKAGED_MODEL, "auto", unwritable, seed_inputs(SEED_DIR)[:8])
    assert isinstance(chosen, SentenceTransformerEmbedder)
    assert chosen.embed(["how many apples?"]).shape == (1, chosen.dim)
    (line,) = fallback_lines(caplog)  # one line, which says why and what to do
    assert "/dev/null/onnx" in line and "FEWSHOT_MODEL_CACHE_DIR" in line


def test_onnx_asked_for_with_an_unwritable_cache_is_one_clear_error() -> None:
    with pytest.raises(EmbeddingError) as refused:
        load_embedder(PACKAGED_MODEL, "onnx", Path("/dev/null/onnx"), seed_inputs(SEED_DIR)[:8])
    assert "cannot write the ONNX export to /dev/null/onnx" in refused.value.message
    assert "\n" not in refused.value.message


def test_auto_embeds_with_pytorch_when_a_cached_export_cannot_be_loaded(
    onnx_embedder: OnnxEmbedder, onnx_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "cache"
    shutil.copytree(onnx_cache, damaged)
    (folder,) = [p for p in damaged.iterdir() if not p.name.startswith(".")]
    (folder / "model.onnx").write_bytes(b"not a model")  # a verdict that says yes beside a broken file
    with caplog.at_level(logging.WARNING, logger="fewshot_service.embedding"):
        chosen = load_embedder(PACKAGED_MODEL, "auto", damaged, seed_inputs(SEED_DIR))
    assert isinstance(chosen, SentenceTransformerEmbedder)
    (line,) = fallback_lines(caplog)
    assert "cannot load the ONNX model" in line
