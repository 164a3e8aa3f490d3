"""The one write path: refused while the service starts (nothing stored), and an edit's embedding is always
that of the text it commits, however edits race."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.curation.service import Curator
from fewshot_service.curation.types import ExampleUpdate
from fewshot_service.embedding import Embedder, SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..conftest import ServiceFactory
from ..keyed import tiny_seed_dir


@pytest.fixture
def seeded_settings(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Settings:
    """Settings over a bank a first start has already seeded and indexed."""
    settings = Settings(
        data_dir=tmp_path / "data", index_dir=tmp_path / "indexes", seed_dir=tiny_seed_dir(tmp_path / "seed")
    )
    bank = SqlBank(settings.resolved_database_url())
    FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir)).start()
    bank.close()
    return settings


@pytest.fixture(params=["not started", "loading the model"])
def starting_client(
    request: pytest.FixtureRequest, seeded_settings: Settings, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[TestClient, SqlBank, Callable[[], None]]]:
    """A client of a service that is not ready: start() not run yet, or running with the model still loading.
    Also yields the bank, and a function that lets the start finish and waits until it is ready."""
    loaded = threading.Event()

    def slow_load() -> Embedder:
        loaded.wait(60)
        return embedder

    bank = SqlBank(seeded_settings.resolved_database_url())
    service = FewshotService(seeded_settings, bank, slow_load, IndexStore(seeded_settings.index_dir))
    background = request.param == "loading the model"
    client = TestClient(create_app(seeded_settings, service, start="background" if background else "no"))

    def finish() -> None:
        loaded.set()
        if not background:
            service.start()
        deadline = time.monotonic() + 60
        while not service.ready and time.monotonic() < deadline:
            time.sleep(0.05)

    with client:
        if background:
            while service.phase != "loading the embedding model":
                time.sleep(0.01)
        yield client, bank, finish
        loaded.set()
    bank.close()


def test_a_write_during_start_up_stores_nothing_and_gets_503(
    starting_client: tuple[TestClient, SqlBank, Callable[[], None]],
) -> None:
    client, bank, finish = starting_client
    revision, count = bank.revision(), bank.count()
    example = next(iter(bank.iter_examples()))
    writes = [
        client.post("/v1/examples", json={"input": "What is 17 times 3?", "output": "51"}),
        client.patch(f"/v1/examples/{example.id}", json={"input": "An edited question?", "output": "edited"}),
        client.delete(f"/v1/examples/{example.id}"),
        client.post(f"/v1/examples/{example.id}/labels", json={"annotator": "ann", "verdict": "reject", "score": 1}),
    ]
    assert [response.status_code for response in writes] == [503] * 4, [response.text for response in writes]
    assert bank.revision() == revision and bank.count() == count
    assert bank.get(example.id) == example and bank.labels_of(example.id) == []
    finish()
    # Once ready, the same label is stored once: the refused attempt left nothing behind to duplicate.
    retried = client.post(f"/v1/examples/{example.id}/labels", json={"annotator": "ann", "verdict": "reject"})
    assert retried.status_code == 201, retried.text
    assert len(bank.labels_of(example.id)) == 1


def indexed_vector(service: FewshotService, example_id: str) -> np.ndarray | None:
    index = service.served().index
    slot = index.slots.slot_of.get(example_id)
    return None if slot is None else index.vectors(np.array([slot], dtype=np.int64))[0]


def test_two_racing_edits_of_one_input_leave_the_index_holding_the_committed_texts_embedding(
    make_service: ServiceFactory, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    service = make_service(seed_dir=tiny_seed_dir(tmp_path / "seed"))
    service.start()
    curator = Curator(service)
    example = next(iter(service.bank.iter_examples()))
    original = example.input
    for round_ in range(8):
        # One edit changes the input while others keep putting back the original text, to them "unchanged":
        # an edit that read the stored input outside its write could commit the original without an embedding.
        changed = threading.Event()

        def change(
            text: str = f"Round {round_}: how many legs do {round_ + 3} spiders have in total?",
            changed: threading.Event = changed,
        ) -> None:
            curator.update(example.id, ExampleUpdate(input=text), None, "changer")
            changed.set()

        def restore(changed: threading.Event = changed) -> None:
            while not changed.is_set():
                curator.update(example.id, ExampleUpdate(input=original), None, "restorer")

        threads = [threading.Thread(target=change)] + [threading.Thread(target=restore) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        committed = service.bank.get(example.id).input
        vector = indexed_vector(service, example.id)
        assert vector is not None, f"round {round_}: the edited example dropped out of the index"
        assert np.allclose(vector, embedder.embed([committed])[0], atol=1e-5), f"round {round_}: a stale vector"
        assert service.bank.count_unembedded(embedder.model_id) == 0
