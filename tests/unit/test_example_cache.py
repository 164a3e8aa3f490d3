"""/v1/select serves chosen examples from memory, and never a copy older than what the index knows."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewshot_service.curation.service import Curator
from fewshot_service.curation.types import ExampleUpdate
from fewshot_service.models import SelectRequest
from fewshot_service.serving.example_cache import ExampleCache

from ..conftest import ServiceFactory
from ..helpers import seed_rows, write_jsonl

PROMPT = "A farmer has 12 cows and buys 5 more. How many cows does the farmer have now?"


@pytest.fixture(scope="module")
def small_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty seed examples of two topics: enough to select from, quick to embed for every test."""
    rows = [r for r in seed_rows() if r["topic"] in ("arithmetic", "geometry")][:40]
    return write_jsonl(tmp_path_factory.mktemp("small-seed") / "seed.jsonl", rows).parent


def test_select_reads_no_bank_rows_once_the_cache_is_warm(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed)
    service.start()
    assert len(service.examples) == service.bank.count()  # warmed at start (the seed bank fits)
    before = service.examples.misses
    first = service.select(SelectRequest(prompt=PROMPT, k=4))
    again = service.select(SelectRequest(prompt=PROMPT, k=4))
    assert len(first.examples) == 4
    assert service.examples.misses == before
    assert [e.model_dump() for e in again.examples] == [e.model_dump() for e in first.examples]


def test_an_edit_through_the_service_is_served_at_once(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed)
    service.start()
    chosen = service.select(SelectRequest(prompt=PROMPT, k=1, strategy="knn")).examples[0]
    Curator(service).update(chosen.id, ExampleUpdate(output="edited answer"), None, "tester")
    again = service.select(SelectRequest(prompt=PROMPT, k=1, strategy="knn")).examples[0]
    assert again.id == chosen.id
    assert again.output == "edited answer"


def test_an_edit_by_another_process_is_served_once_the_index_follows_it(
    make_service: ServiceFactory, small_seed: Path
) -> None:
    service = make_service(seed_dir=small_seed)
    service.start()
    chosen = service.select(SelectRequest(prompt=PROMPT, k=1, strategy="knn")).examples[0]
    # Another replica (or `fewshot import`) writes the shared bank directly.
    service.bank.update(chosen.id, {"output": "changed elsewhere"}, expected_version=None, actor="other")
    # Until this process applies the change, it serves the example as its index knows it, consistently ...
    stale = service.select(SelectRequest(prompt=PROMPT, k=1, strategy="knn")).examples[0]
    assert stale.output == chosen.output
    service.catch_up()
    # ... and afterwards the new text, although the old one is still in the cache.
    fresh = service.select(SelectRequest(prompt=PROMPT, k=1, strategy="knn")).examples[0]
    assert fresh.id == chosen.id and fresh.output == "changed elsewhere"


def test_a_disabled_cache_reads_the_bank(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed, example_cache_size=0)
    service.start()
    assert len(service.examples) == 0
    assert len(service.select(SelectRequest(prompt=PROMPT, k=3)).examples) == 3
    assert len(service.examples) == 0


def test_the_cache_is_bounded_and_keeps_the_newest_copy(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed, example_cache_size=10)
    service.start()
    entries = list(service.bank.iter_with_revisions(12))
    cache = ExampleCache(10)
    cache.put(entries)
    assert len(cache) == 10
    revision, example = entries[-1]
    cache.put([(revision + 5, example)])
    cache.put([(revision, example)])  # a slower reader's older copy does not replace the newer one
    found, missing = cache.get([example.id], [revision + 5])
    assert example.id in found and not missing
    found, missing = cache.get([example.id], [revision])
    assert not found and missing == [example.id]


def test_warming_pages_through_the_bank_without_repeats(make_service: ServiceFactory, small_seed: Path) -> None:
    service = make_service(seed_dir=small_seed)
    service.start()
    paged = [example.id for _, example in service.bank.iter_with_revisions(25, batch_size=7)]
    assert len(paged) == 25 == len(set(paged))
    everything = [example.id for _, example in service.bank.iter_with_revisions(1000, batch_size=7)]
    assert sorted(everything) == sorted(e.id for e in service.bank.iter_examples())
