"""The index's life across restarts: loaded when its manifest matches, rebuilt (and logged) when not."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.errors import NotReady
from fewshot_service.models import ExampleImport, SelectRequest

from ..conftest import ServiceFactory
from ..helpers import CountingEmbedder, write_jsonl

TOPICS = {
    "speed": ["A train covers 150 km in 3 hours. What is its speed?", "A runner does 10 km in 50 minutes; pace?"],
    "area": ["Find the area of a 4 m by 6 m rectangle.", "What is the area of a circle of radius 2 cm?"],
}


@pytest.fixture
def small_seed(tmp_path: Path) -> Path:
    rows = [
        {"external_id": f"{topic}-{n}", "input": text, "output": "x", "topic": topic, "difficulty": n + 1}
        for topic, texts in TOPICS.items()
        for n, text in enumerate(texts)
    ]
    write_jsonl(tmp_path / "seed" / "small.jsonl", rows)
    return tmp_path / "seed"


def test_restart_loads_the_saved_index_without_embedding(
    make_service: ServiceFactory, small_seed: Path, embedder: SentenceTransformerEmbedder
) -> None:
    first_embedder = CountingEmbedder(embedder)
    first = make_service(seed_dir=small_seed, use=first_embedder).start()
    assert (first.seeded, first.embedded, first.index_action) == (4, 4, "rebuilt")

    second_embedder = CountingEmbedder(embedder)
    service = make_service(seed_dir=small_seed, use=second_embedder)
    second = service.start()
    assert second.index_action == "loaded" and second.embedded == 0 and second.seeded == 0
    assert second.index_version == first.index_version
    assert second_embedder.texts_embedded == 0  # nothing but the prompt below is ever embedded
    service.select(SelectRequest(prompt="How fast is a car doing 90 km in 1.5 hours?"))
    assert second_embedder.texts_embedded == 1


def test_a_bank_changed_since_the_build_is_replayed_onto_the_saved_index(
    make_service: ServiceFactory, small_seed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_service(seed_dir=small_seed).start()
    service = make_service(seed_dir=small_seed)
    # Another process (say `fewshot import`) wrote while the service was down: added one, deleted one.
    service.bank.create_schema()
    service.bank.upsert([ExampleImport(external_id="new", input="What is the volume of a 2 cm cube?", topic="area")])
    [speed] = [e for e in service.bank.iter_examples() if e.external_id == "speed-0"]
    service.bank.delete(speed.id, "test")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = service.start()
    # The saved version is loaded and the changes after its revision replayed: no rebuild.
    assert report.index_action == "loaded" and report.index_version == first.index_version
    assert "replayed" in report.reason and not any("rebuilding" in r.message for r in caplog.records)
    assert service.applied_revision == service.bank.revision()
    found = service.select(SelectRequest(prompt="volume of a small cube", k=1, strategy="knn"))
    assert found.examples[0].external_id == "new"
    trains = service.select(SelectRequest(prompt="A train covers 150 km in 3 hours. What is its speed?", k=4))
    assert "speed-0" not in {e.external_id for e in trains.examples}


def test_another_model_triggers_a_rebuild_with_fresh_embeddings(
    make_service: ServiceFactory, small_seed: Path, embedder: SentenceTransformerEmbedder
) -> None:
    make_service(seed_dir=small_seed).start()
    other_model = CountingEmbedder(embedder, model_id="another/model")
    report = make_service(seed_dir=small_seed, use=other_model).start()
    assert report.index_action == "rebuilt" and "another/model" in report.reason
    assert report.embedded == 4 and other_model.texts_embedded == 4


def test_a_damaged_index_file_is_rebuilt_not_served(make_service: ServiceFactory, small_seed: Path) -> None:
    first = make_service(seed_dir=small_seed).start()
    damaged = Path(make_service(seed_dir=small_seed).store.versions_dir) / first.index_version / "slots.npz"
    damaged.write_bytes(b"not an npz file")
    report = make_service(seed_dir=small_seed).start()
    assert report.index_action == "rebuilt" and "checksum" in report.reason


def test_an_empty_bank_is_seeded_only_once(make_service: ServiceFactory, small_seed: Path) -> None:
    make_service(seed_dir=small_seed).start()
    service = make_service(seed_dir=small_seed)
    assert service.start().seeded == 0
    assert service.bank.count() == 4


def test_seeding_can_be_turned_off(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed, seed_on_empty=False)
    report = service.start()
    assert report.seeded == 0 and service.served().index.size == 0
    assert service.select(SelectRequest(prompt="anything")).examples == []


def test_readiness_waits_for_the_example_cache_and_the_ready_log_line(
    make_service: ServiceFactory, small_seed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_service(seed_dir=small_seed).start()
    service = make_service(seed_dir=small_seed)
    seen: list[tuple[bool, bool]] = []
    fill = service.examples.fill

    def probing_fill(*args: Any, **kwargs: Any) -> None:
        # An index is served by now; a prober asking at this moment must still hear "starting".
        seen.append((service.ready, any(r.message.startswith("ready:") for r in caplog.records)))
        with pytest.raises(NotReady, match="starting"):
            service.served()
        fill(*args, **kwargs)

    service.examples.fill = probing_fill  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        service.start()
    assert seen == [(False, False)]
    assert service.ready and service.served().index.size == 4
    assert any(r.message.startswith("ready: 4 examples") for r in caplog.records)
