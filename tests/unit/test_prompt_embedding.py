"""The query path's embedding: concurrent prompts share model calls, repeated prompts are not re-embedded."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.embedding.batching import MicroBatcher
from fewshot_service.models import SelectRequest

from ..conftest import ServiceFactory
from ..helpers import seed_rows, write_jsonl

PROMPTS = [f"A shop sells {n} pencils for {n + 3} dollars. What does one pencil cost?" for n in range(24)]


class GatedEmbedder:
    """The real model behind a gate: the first call blocks until released, so the others queue meanwhile."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        self.embedder = embedder
        self.batches: list[int] = []
        self.release = threading.Event()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.batches:
            self.release.wait(timeout=30)
        self.batches.append(len(texts))
        return self.embedder.embed(texts)


def test_concurrent_prompts_are_embedded_together_and_each_gets_its_own_vector(
    embedder: SentenceTransformerEmbedder,
) -> None:
    gated = GatedEmbedder(embedder)
    batcher = MicroBatcher(gated.embed, max_batch=8)
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        futures = [pool.submit(batcher.embed_one, prompt) for prompt in PROMPTS]
        while len(batcher._queue) < len(PROMPTS) - 1:  # the first leads; the rest queue behind it
            threading.Event().wait(0.01)
        gated.release.set()
        vectors = np.stack([f.result(timeout=60) for f in futures])
    assert gated.batches[0] == 1
    assert max(gated.batches) == 8  # later batches are capped at max_batch
    assert sum(gated.batches) == len(PROMPTS) and len(gated.batches) <= 1 + 3
    # Batching changes nothing in the results: each thread gets its own prompt's embedding.
    assert np.allclose(vectors, embedder.embed(PROMPTS), atol=1e-5)


def test_concurrent_requests_for_the_same_prompt_each_get_an_answer(embedder: SentenceTransformerEmbedder) -> None:
    gated = GatedEmbedder(embedder)
    batcher = MicroBatcher(gated.embed, max_batch=4)
    same = [PROMPTS[0]] * 6 + [PROMPTS[1]] * 6
    with ThreadPoolExecutor(max_workers=len(same)) as pool:
        futures = [pool.submit(batcher.embed_one, prompt) for prompt in same]
        while len(batcher._queue) < len(same) - 1:
            threading.Event().wait(0.01)
        gated.release.set()
        vectors = np.stack([f.result(timeout=60) for f in futures])
    assert np.allclose(vectors, embedder.embed(same), atol=1e-5)
    assert sum(gated.batches) == len(same)


def test_a_failing_model_call_fails_every_prompt_of_its_batch_and_the_next_call_works(
    embedder: SentenceTransformerEmbedder,
) -> None:
    broken = {"on": True}

    def embed(texts: Sequence[str]) -> np.ndarray:
        if broken["on"]:
            raise RuntimeError("model exploded")
        return embedder.embed(texts)

    batcher = MicroBatcher(embed)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.embed_one("first")
    broken["on"] = False
    assert np.allclose(batcher.embed_one("second"), embedder.embed(["second"])[0], atol=1e-5)


@pytest.fixture(scope="module")
def small_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("small-seed") / "seed.jsonl", seed_rows()[:30]).parent


def test_a_repeated_prompt_is_not_embedded_again(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed)
    service.start()
    before = service.prompt_batcher.texts
    first = service.select(SelectRequest(prompt=PROMPTS[0], k=3))
    second = service.select(SelectRequest(prompt=PROMPTS[0], k=3, strategy="knn"))
    service.select(SelectRequest(prompt=PROMPTS[1], k=3))
    assert service.prompt_batcher.texts - before == 2
    assert first.examples and second.examples


def test_the_prompt_cache_can_be_turned_off(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed, query_cache_size=0)
    service.start()
    before = service.prompt_batcher.texts
    for _ in range(3):
        service.select(SelectRequest(prompt=PROMPTS[0], k=2))
    assert service.prompt_batcher.texts - before == 3


class CountingEmbedder:
    """The real model, holding each call open until released, and counting the calls running at once."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        self.embedder = embedder
        self.running = 0
        self.most_at_once = 0
        self.batches: list[int] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.batches.append(len(texts))
        self.release.wait(timeout=30)
        try:
            return self.embedder.embed(texts)
        finally:
            with self._lock:
                self.running -= 1


def test_two_lanes_run_two_batches_at_once_and_never_more(embedder: SentenceTransformerEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    batcher = MicroBatcher(counting.embed, max_batch=4, lanes=2)
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        futures = [pool.submit(batcher.embed_one, prompt) for prompt in PROMPTS]
        while counting.running < 2 or len(batcher._queue) < len(PROMPTS) - 2:
            threading.Event().wait(0.01)  # two lone prompts lead, one per lane; the rest queue behind them
        assert counting.batches == [1, 1]
        counting.release.set()
        vectors = np.stack([f.result(timeout=60) for f in futures])
    assert counting.most_at_once == 2
    assert sum(counting.batches) == len(PROMPTS) and max(counting.batches) == 4
    # A prompt already in a running batch never leads another one: each is embedded exactly once, as its own.
    assert batcher.texts == len(PROMPTS)
    assert np.allclose(vectors, embedder.embed(PROMPTS), atol=1e-5)


class OrderedEmbedder(GatedEmbedder):
    """GatedEmbedder that also records the texts of each call, in call order."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        super().__init__(embedder)
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = super().embed(texts)
        self.texts.extend(texts)
        return vectors


def test_queued_prompts_are_embedded_first_come_first_served(embedder: SentenceTransformerEmbedder) -> None:
    # Under sustained load a prompt must not wait while later ones overtake it: a freed lane goes to the
    # oldest waiting prompt, and every batch takes the queue from its head.
    ordered = OrderedEmbedder(embedder)
    batcher = MicroBatcher(ordered.embed, max_batch=2)
    prompts = PROMPTS[:7]
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        futures = []
        for n, prompt in enumerate(prompts):  # one at a time, so the arrival order is known
            futures.append(pool.submit(batcher.embed_one, prompt))
            while len(batcher._queue) < n or batcher._running < 1:  # the first leads; the rest queue
                threading.Event().wait(0.005)
        ordered.release.set()
        vectors = np.stack([f.result(timeout=60) for f in futures])
    assert ordered.texts == prompts
    assert ordered.batches == [1, 2, 2, 2]
    assert np.allclose(vectors, embedder.embed(prompts), atol=1e-5)


def test_lanes_and_batches_below_one_are_refused(embedder: SentenceTransformerEmbedder) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(embedder.embed, lanes=0)
    with pytest.raises(ValueError):
        MicroBatcher(embedder.embed, max_batch=0)
