"""One index directory shared by several processes: builds never collide or get cleaned up while running,
and CURRENT always names a complete version, never an older build of the same model."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from fewshot_service.index import IndexStore, VectorIndex
from fewshot_service.index import store as store_module
from fewshot_service.index.store import _locked
from fewshot_service.models import IndexRow

DIM = 8


def index(n: int = 5) -> VectorIndex:
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [IndexRow(f"e{i}", v, None, None, "curated", "approved", None, ()) for i, v in enumerate(vectors)]
    return VectorIndex.build(DIM, rows)


def publish_many(root: str, worker: int) -> list[str]:
    store = IndexStore(Path(root), keep_versions=100)
    store.prepare()  # what every starting replica does, while the others build
    return [
        store.save(index(), model_id="m", bank_revision=worker * 100 + n, build_seconds=0).version for n in range(6)
    ]


def test_processes_building_at_once_get_distinct_complete_versions(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        made = [v for versions in pool.starmap(publish_many, [(str(tmp_path), w) for w in range(3)]) for v in versions]
    store = IndexStore(tmp_path, keep_versions=100)
    assert len(set(made)) == 18 and sorted(made) == store.versions()
    for version in made:
        store.load(version)  # every one complete and matching its checksums
    # Each worker's revisions rise; the highest revision published stays current whatever the timing.
    assert store.read_manifest(store.current_version() or "").bank_revision == 205
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_running_build_is_not_cleaned_up_by_another_process_starting(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.prepare()
    running = tmp_path / "tmp" / "20260101T000000000000-r3-abcdef"
    running.mkdir()
    with _locked(running.with_name(running.name + ".lock")):  # its builder is alive and holds the lock
        store.prepare()
        assert running.exists()
    store.prepare()  # the builder died: its folder goes
    assert not running.exists() and list((tmp_path / "tmp").iterdir()) == []


def test_current_never_moves_back_to_an_older_build_of_the_same_model(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    newer = store.save(index(), model_id="m", bank_revision=9, build_seconds=0)
    older = store.save(index(), model_id="m", bank_revision=4, build_seconds=0)  # a slow build finishing late
    assert store.current_version() == newer.version and older.version in store.versions()
    other_model = store.save(index(), model_id="another", bank_revision=2, build_seconds=0)
    assert store.current_version() == other_model.version  # a model change always takes over


def test_a_build_published_between_the_listing_and_its_lock_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race CI met once with three processes: a starting process lists tmp/, the builder publishes its
    # folder (moves it out of tmp/) and lets go of its lock, and only then does the lock come free here.
    store = IndexStore(tmp_path)
    store.prepare()
    build = tmp_path / "tmp" / "20260101T000000000000-r3-abcdef"
    build.mkdir()
    real_locked = store_module._locked

    @contextmanager
    def published_first(path: Path, wait: bool = True) -> Iterator[bool]:
        if path.name == build.name + ".lock":
            shutil.rmtree(build)
        with real_locked(path, wait=wait) as free:
            yield free

    monkeypatch.setattr(store_module, "_locked", published_first)
    store.prepare()
    assert list((tmp_path / "tmp").iterdir()) == []
