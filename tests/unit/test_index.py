"""The FAISS wrapper: filters applied inside the search, tombstones, and the saved version's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from fewshot_service.errors import IndexStoreError
from fewshot_service.index import IndexStore, VectorIndex
from fewshot_service.models import IndexRow, SelectFilters

DIM = 16


def rows(count: int, seed: int = 0, rare_every: int = 33) -> list[IndexRow]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        IndexRow(
            id=f"ex{n}",
            embedding=vectors[n],
            topic="rare" if n % rare_every == 0 else "common",
            difficulty=n % 5 + 1,
            source=("curated", "llm", "imported")[n % 3],
            status="pending" if n % 10 == 0 else "approved",
            quality=None if n % 4 == 0 else float(n % 5 + 1),
            tags=("even",) if n % 2 == 0 else (),
        )
        for n in range(count)
    ]


def test_selective_filter_is_applied_inside_the_search() -> None:
    data = rows(3000)
    index = VectorIndex.build(DIM, data, batch_size=512)
    rare = {r.id for r in data if r.topic == "rare" and r.status == "approved"}
    assert len(rare) / len(data) < 0.03
    # A query right on top of a common example: post-filtering a top-50 would find no rare one.
    query = next(r for r in data if r.topic == "common").embedding
    hits = index.search(query, 10, SelectFilters(topics=["rare"]))
    assert len(hits.slots) == 10
    assert set(index.ids(hits.slots)) <= rare
    assert list(hits.scores) == sorted(hits.scores, reverse=True)
    # Exactly the 10 best rare examples, as a brute-force scan finds them.
    expected = sorted(rare, key=lambda i: -float(data[int(i[2:])].embedding @ query))[:10]
    assert index.ids(hits.slots) == expected


@pytest.mark.parametrize(
    ("filters", "predicate"),
    [
        (SelectFilters(difficulty_min=2, difficulty_max=3), lambda r: 2 <= r.difficulty <= 3),
        (SelectFilters(sources=["llm"]), lambda r: r.source == "llm"),
        (SelectFilters(tags=["even"]), lambda r: "even" in r.tags),
        (SelectFilters(min_quality=4), lambda r: r.quality is not None and r.quality >= 4),
        (SelectFilters(statuses=["pending"]), lambda r: True),
    ],
)
def test_each_filter_returns_exactly_the_matching_examples(filters: SelectFilters, predicate: object) -> None:
    data = rows(400)
    index = VectorIndex.build(DIM, data)
    matching = {r.id for r in data if r.status in filters.statuses and predicate(r)}  # type: ignore[operator]
    hits = index.search(data[1].embedding, 1000, filters)
    assert set(index.ids(hits.slots)) == matching


@pytest.mark.parametrize(
    "filters",
    [SelectFilters(), SelectFilters(statuses=["approved", "pending"]), SelectFilters(topics=["common"])],
    ids=["approved (90%)", "everything", "common topic (87%)"],
)
def test_exact_search_past_tombstones_exclusions_and_broad_filters_finds_the_true_best(filters: SelectFilters) -> None:
    data = rows(3000)
    index = VectorIndex.build(DIM, data, batch_size=512)
    index.remove(["ex1", "ex2"])
    query = rows(1, seed=7)[0].embedding
    hits = index.search(query, 40, filters, exclude_ids=["ex3"])
    kept = [
        r
        for r in data
        if r.status in filters.statuses
        and (not filters.topics or r.topic in filters.topics)
        and r.id not in {"ex1", "ex2", "ex3"}
    ]
    expected = sorted(kept, key=lambda r: -float(r.embedding @ query))[:40]
    assert index.ids(hits.slots) == [r.id for r in expected]
    np.testing.assert_allclose(hits.scores, [float(r.embedding @ query) for r in expected], rtol=0, atol=1e-6)


def test_exclusions_and_tombstones_are_never_returned() -> None:
    data = rows(200)
    index = VectorIndex.build(DIM, data)
    query = data[5].embedding
    best = index.ids(index.search(query, 3, SelectFilters()).slots)
    assert best[0] == "ex5"
    excluded = index.ids(index.search(query, 3, SelectFilters(), exclude_ids=["ex5"]).slots)
    assert "ex5" not in excluded and len(excluded) == 3
    index.remove(["ex5", best[1]])
    after = index.ids(index.search(query, 200, SelectFilters(statuses=["approved", "pending"])).slots)
    assert "ex5" not in after and best[1] not in after
    assert len(after) == 198 == index.size


def test_asking_for_more_than_match_returns_all_matches() -> None:
    index = VectorIndex.build(DIM, rows(100))
    assert len(index.search(rows(1, seed=9)[0].embedding, 50, SelectFilters(topics=["rare"])).slots) == 3
    assert len(index.search(rows(1)[0].embedding, 5, SelectFilters(topics=["no such topic"])).slots) == 0


def test_vectors_are_the_stored_ones() -> None:
    data = rows(50)
    index = VectorIndex.build(DIM, data)
    np.testing.assert_allclose(index.vectors(np.array([7, 3])), np.stack([data[7].embedding, data[3].embedding]))


def test_saved_version_has_a_manifest_and_loads_back(tmp_path: Path) -> None:
    data = rows(120)
    store = IndexStore(tmp_path, keep_versions=2)
    store.prepare()
    manifest = store.save(VectorIndex.build(DIM, data), model_id="m", bank_revision=7, build_seconds=0.1)
    on_disk = json.loads((tmp_path / "versions" / manifest.version / "manifest.json").read_text())
    assert on_disk["model_id"] == "m" and on_disk["dim"] == DIM and on_disk["count"] == 120
    assert on_disk["bank_revision"] == 7 and on_disk["faiss_version"] == faiss.__version__
    assert set(on_disk["checksums"]) == {"index.faiss", "slots.npz"}
    assert store.current_version() == manifest.version
    loaded, loaded_manifest = store.load(manifest.version)
    assert loaded_manifest == manifest
    filters = SelectFilters(topics=["rare"], tags=["even"], min_quality=2)
    assert loaded.ids(loaded.search(data[0].embedding, 9, filters).slots) == VectorIndex.build(DIM, data).ids(
        VectorIndex.build(DIM, data).search(data[0].embedding, 9, filters).slots
    )


def test_damaged_file_is_refused(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.prepare()
    manifest = store.save(VectorIndex.build(DIM, rows(30)), model_id="m", bank_revision=1, build_seconds=0)
    with (tmp_path / "versions" / manifest.version / "index.faiss").open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff\xfe\xfd")
    with pytest.raises(IndexStoreError, match="checksum"):
        store.load(manifest.version)


def test_old_versions_are_pruned_and_interrupted_builds_cleaned(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, keep_versions=2)
    store.prepare()
    made = [
        store.save(VectorIndex.build(DIM, rows(10)), model_id="m", bank_revision=n, build_seconds=0).version
        for n in range(4)
    ]
    assert store.versions() == made[-2:]
    leftover = tmp_path / "tmp" / "20260101T000000-r1.999"
    leftover.mkdir(parents=True)
    (leftover / "index.faiss").write_bytes(b"half written")
    store.prepare()
    assert not leftover.exists()
    assert store.current_version() == made[-1]


def test_a_search_leaves_the_threads_openmp_setting_as_it_was() -> None:
    # Searches run on one OpenMP thread (a one-query search gains nothing from more, and their idle team
    # spins); a rebuild on the same thread afterwards must still get every core.
    index = VectorIndex.build(DIM, rows(200), batch_size=64)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        index.search(rows(1, seed=3)[0].embedding, 5, SelectFilters())
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


def test_a_saved_index_loads_with_the_same_ids_tags_and_tombstones(tmp_path: Path) -> None:
    data = rows(45_000)  # more than one load step (20,000 rows), so the stepped conversion is exercised
    index = VectorIndex.build(DIM, data, batch_size=4096)
    index.remove(["ex3", "ex44998"])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert loaded.slots.ids == index.slots.ids
    assert loaded.slots.slot_of == index.slots.slot_of and "ex3" not in loaded.slots.slot_of
    assert loaded.slots.slot_tags == index.slots.slot_tags
    query = data[10].embedding
    for filters in (SelectFilters(tags=["even"]), SelectFilters()):
        assert loaded.ids(loaded.search(query, 20, filters).slots) == index.ids(index.search(query, 20, filters).slots)
