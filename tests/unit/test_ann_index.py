"""Approximate index kinds (IVF, HNSW) and compact storage: the same guarantees as the exact index.

Filtered searches return min(n, matching) examples, all of them matching, whether the filter is selective
(scanned exactly) or broad (searched approximately, redone exactly when the approximate search comes up
short); tombstoned examples never come back; quantised storage keeps unchanged rows in place; the kind
and storage are written to the manifest and survive a save and a load.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fewshot_service.index import IndexOptions, IndexStore, VectorIndex
from fewshot_service.index.kinds import create, describe
from fewshot_service.index.manifest import IndexManifest
from fewshot_service.models import IndexRow, SelectFilters

DIM = 32
COUNT = 4000


def clustered_rows(count: int = COUNT, seed: int = 0) -> list[IndexRow]:
    """Vectors around 40 centres (as sentence embeddings cluster by subject), with attributes to filter on."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, count)] + 0.6 * rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        IndexRow(
            id=f"ex{n}",
            embedding=vectors[n],
            topic="rare" if n % 50 == 0 else ("tenth" if n % 10 == 1 else "common"),
            difficulty=n % 5 + 1,
            source="curated",
            status="pending" if n % 7 == 0 else "approved",
            quality=None,
            tags=(),
        )
        for n in range(count)
    ]


def queries(count: int = 40, seed: int = 99) -> np.ndarray:
    return np.stack([row.embedding for row in clustered_rows(count, seed)])


def exact_ids(rows: list[IndexRow], query: np.ndarray, n: int, keep: set[str]) -> list[str]:
    candidates = [r for r in rows if r.id in keep]
    return [r.id for r in sorted(candidates, key=lambda r: -float(r.embedding @ query))[:n]]


OPTIONS = {
    "ivf": IndexOptions(kind="ivf"),
    "hnsw": IndexOptions(kind="hnsw"),
    "ivf-sq8": IndexOptions(kind="ivf", storage="sq8"),
    "hnsw-float16": IndexOptions(kind="hnsw", storage="float16", hnsw_m=16),
    "flat-sq8": IndexOptions(kind="flat", storage="sq8"),
}


@pytest.fixture(scope="module")
def data() -> list[IndexRow]:
    return clustered_rows()


@pytest.fixture(scope="module", params=list(OPTIONS))
def built(request: pytest.FixtureRequest, data: list[IndexRow]) -> VectorIndex:
    return VectorIndex.build(DIM, data, batch_size=700, options=OPTIONS[request.param])


def test_auto_is_exact_below_the_threshold_and_ivf_from_it(data: list[IndexRow]) -> None:
    assert VectorIndex.build(DIM, data, options=IndexOptions(ann_threshold=COUNT + 1)).kind == "flat"
    index = VectorIndex.build(DIM, data, options=IndexOptions(ann_threshold=COUNT))
    assert (index.kind, index.storage) == ("ivf", "float32")
    assert index.params()["nlist"] == COUNT // 40  # 2·√n lists would leave fewer than 40 training points each


def test_kind_and_storage_are_what_was_asked(built: VectorIndex, request: pytest.FixtureRequest) -> None:
    kind, _, storage = request.node.callspec.params["built"].partition("-")
    assert (built.kind, built.storage) == (kind, storage or "float32")
    assert len(built.slots) == COUNT


def test_unfiltered_results_are_close_to_exact(built: VectorIndex, data: list[IndexRow]) -> None:
    everything = {r.id for r in data}
    overlap = []
    for query in queries():
        hits = built.search(query, 10, SelectFilters(statuses=["approved", "pending"]))
        assert len(hits.slots) == 10 and list(hits.scores) == sorted(hits.scores, reverse=True)
        overlap.append(len(set(built.ids(hits.slots)) & set(exact_ids(data, query, 10, everything))) / 10)
    assert np.mean(overlap) >= 0.9


@pytest.mark.parametrize("exact_share", [1.0, 0.0], ids=["selective-scanned-exactly", "approximate-then-exact"])
@pytest.mark.parametrize("topic", ["rare", "tenth"])
def test_filtered_search_returns_k_matching_when_k_match(
    built: VectorIndex, data: list[IndexRow], exact_share: float, topic: str
) -> None:
    built.exact_share = exact_share
    try:
        matching = {r.id for r in data if r.topic == topic and r.status == "approved"}
        for query in queries():
            for n in (4, 24, len(matching) + 5):
                ids = built.ids(built.search(query, n, SelectFilters(topics=[topic])).slots)
                assert len(ids) == min(n, len(matching)) and set(ids) <= matching
            if exact_share:  # a subset scanned exactly: exactly the best matches
                found = built.ids(built.search(query, 5, SelectFilters(topics=[topic])).slots)
                assert found == exact_ids(data, query, 5, matching) or built.storage != "float32"
    finally:
        built.exact_share = VectorIndex.exact_share


def test_a_probe_that_comes_up_short_is_redone_over_every_list(data: list[IndexRow]) -> None:
    # The filter keeps the 10% of examples farthest from the query: the lists nearest to it, which the
    # probe visits, hold next to none of them.
    query = queries(1)[0]
    far = {r.id for r in sorted(data, key=lambda r: float(r.embedding @ query))[: COUNT // 10]}
    rows = [replace(r, topic="far" if r.id in far else "near", status="approved") for r in data]
    index = VectorIndex.build(DIM, rows, options=IndexOptions(kind="ivf", ivf_nprobe=1))
    index.exact_share = 0.0
    ids = index.ids(index.search(query, 30, SelectFilters(topics=["far"])).slots)
    assert ids == exact_ids(rows, query, 30, far)


def test_tombstoned_examples_are_never_returned(data: list[IndexRow]) -> None:
    for options in (OPTIONS["ivf"], OPTIONS["hnsw"]):
        index = VectorIndex.build(DIM, data, options=options)
        query = data[123].embedding
        nearest = index.ids(index.search(query, 50, SelectFilters(statuses=["approved", "pending"])).slots)
        index.remove(nearest[:25])
        moved = data[124]  # an upsert with a new vector tombstones the old slot and appends
        index.upsert([replace(moved, embedding=data[5].embedding)])
        for exact_share in (1.0, 0.0):
            index.exact_share = exact_share
            for filters in (SelectFilters(statuses=["approved", "pending"]), SelectFilters(topics=["common"])):
                ids = index.ids(index.search(query, 200, filters).slots)
                assert len(ids) == 200 and not set(ids) & set(nearest[:25])
                assert len(ids) == len(set(ids))  # the moved example once, at its new vector
        assert index.size == COUNT - 25


def test_filter_results_follow_attribute_changes(data: list[IndexRow]) -> None:
    # Masks are cached per filter; a change to the slot table must show in the very next search.
    index = VectorIndex.build(DIM, data[:600], options=IndexOptions(kind="ivf"))
    query = data[8].embedding
    before = index.ids(index.search(query, 100, SelectFilters(topics=["rare"])).slots)
    assert "ex8" not in before
    index.upsert([replace(data[8], topic="rare")])
    after = index.ids(index.search(query, 100, SelectFilters(topics=["rare"])).slots)
    assert after[0] == "ex8" and len(after) == len(before) + 1
    index.remove(["ex8"])
    assert index.ids(index.search(query, 100, SelectFilters(topics=["rare"])).slots) == before


def test_quantised_storage_keeps_unchanged_rows_in_their_slots(data: list[IndexRow]) -> None:
    for name in ("ivf-sq8", "hnsw-float16", "flat-sq8"):
        index = VectorIndex.build(DIM, data, options=OPTIONS[name])
        index.upsert(data[:50])  # replayed changes that did not touch the vectors
        assert len(index.slots) == COUNT, name
        stored = index.vectors(np.arange(50, dtype=np.int64))
        original = np.stack([r.embedding for r in data[:50]])
        assert np.abs(stored - original).max() < (0.02 if name.endswith("sq8") else 1e-3), name


def test_kind_storage_and_parameters_survive_save_and_load(
    tmp_path: Path, built: VectorIndex, data: list[IndexRow]
) -> None:
    store = IndexStore(tmp_path)
    store.prepare()
    manifest = store.save(built, model_id="m", bank_revision=1, build_seconds=0)
    on_disk = json.loads((tmp_path / "versions" / manifest.version / "manifest.json").read_text())
    assert (on_disk["kind"], on_disk["storage"], on_disk["params"]) == (built.kind, built.storage, built.params())
    loaded, _ = store.load(manifest.version)
    assert (loaded.kind, loaded.storage, loaded.params()) == (built.kind, built.storage, built.params())
    query = queries(1)[0]
    filters = SelectFilters(topics=["tenth"], difficulty_min=2)
    assert loaded.ids(loaded.search(query, 12, filters).slots) == built.ids(built.search(query, 12, filters).slots)
    # A loaded version takes the changes replayed onto it: a new example, searchable at once.
    loaded.upsert([replace(data[3], id="new", embedding=query, topic="tenth", difficulty=3, status="approved")])
    assert loaded.ids(loaded.search(query, 1, filters).slots) == ["new"]


def test_a_manifest_written_before_storage_was_recorded_still_loads() -> None:
    old = {
        "version": "v1", "kind": "flat", "model_id": "m", "dim": 4, "count": 0, "faiss_version": "1.8.0",
        "bank_revision": 0, "created_at": "2026-01-01T00:00:00Z", "build_seconds": 0.1, "checksums": {},
    }  # fmt: skip
    manifest = IndexManifest.model_validate_json(json.dumps(old))
    assert (manifest.storage, manifest.params) == ("float32", {})


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_an_empty_bank_builds_an_index_that_takes_adds(options: IndexOptions, data: list[IndexRow]) -> None:
    index = VectorIndex.build(DIM, [], options=options)
    assert index.size == 0 and len(index.search(data[0].embedding, 4, SelectFilters()).slots) == 0
    index.add(data[:10])
    assert index.ids(index.search(data[3].embedding, 1, SelectFilters(statuses=["approved", "pending"])).slots) == [
        "ex3"
    ]


def test_a_few_vectors_with_8_bit_storage_are_kept_in_float32() -> None:
    # Eight bits per dimension need each dimension's range estimated from enough vectors.
    assert describe(create(DIM, IndexOptions(storage="sq8"), 10)) == ("flat", "float32")
    assert describe(create(DIM, IndexOptions(storage="sq8"), 5000)) == ("flat", "sq8")
