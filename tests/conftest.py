"""Shared fixtures: the real model (loaded once per test run), real SQLite banks and FAISS indexes in tmp dirs."""

from __future__ import annotations

import os
import threading

# One OpenMP/torch thread per test process (inherited by the servers and commands the tests start): the suite
# runs on two xdist workers, and two-thread torch teams in every process spin against each other on a small
# machine (a one-text embedding then takes 20x longer). A developer may still set OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import Embedder, SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from .helpers import SEED_DIR

LEVELS = ("unit", "api", "cli", "system", "postgres", "data", "deploy", "ui")
# The order files are handed to the two xdist workers (pyproject's addopts keep xdist from reordering them by
# their number of tests): the longest files first, so that no long file is left running alone at the end of
# the run. Measured with `pytest -q --durations=0` (each file's setup, call and teardown times added up;
# 2026-12-08: the first eight took 45-86 s each). Then the folders of long files, then the rest.
LONGEST_FILES = (
    "api/test_fuzz.py", "unit/test_embedding_backends.py", "api/test_hostile_input.py",
    "api/test_write_invariants.py", "system/test_crash_safety.py", "postgres/test_bank_outage.py",
    "ui/test_workbench_safety.py", "api/test_curation_api.py",
)  # fmt: skip
LONG_FIRST = ("system", "postgres", "ui", "api", "cli", "unit", "deploy", "data")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's level, so `-m` selects by level without a marker in every file."""
    tests_dir = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests_dir).parts
        if len(relative) > 1 and relative[0] in LEVELS:
            item.add_marker(getattr(pytest.mark, relative[0]))

    def rank(item: pytest.Item) -> tuple[int, int]:
        relative = item.path.relative_to(tests_dir).as_posix()
        if relative in LONGEST_FILES:
            return (0, LONGEST_FILES.index(relative))
        level = relative.split("/")[0]
        return (1, LONG_FIRST.index(level) if level in LONG_FIRST else len(LONG_FIRST))

    items.sort(key=rank)  # stable: files and tests keep their order within a rank


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return RememberingEmbedder()


class RememberingEmbedder(SentenceTransformerEmbedder):
    """The real model, remembering each text's vector for the session: hundreds of tests build a service on
    the same small seed bank, and embedding it again each time (0.4 s) was about a seventh of the suite's
    time. Every vector is the model's own answer for its text; none is made up."""

    def __init__(self) -> None:
        super().__init__()
        self._vectors: dict[str, np.ndarray] = {}
        self._remember = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._remember:
            missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
        if missing:
            computed = super().embed(missing)  # raises as the model does: nothing is remembered then
            with self._remember:
                self._vectors.update(zip(missing, computed, strict=True))
        if not texts:
            return super().embed(texts)
        with self._remember:
            return np.stack([self._vectors[text] for text in texts])


ServiceFactory = Callable[..., FewshotService]


@pytest.fixture
def make_service(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[ServiceFactory]:
    """Builds services over one tmp data/index dir; several calls model restarts of the same deployment."""
    banks: list[SqlBank] = []

    def build(*, seed_dir: Path | None = None, use: Embedder | None = None, **overrides: Any) -> FewshotService:
        settings = Settings(
            data_dir=tmp_path / "data",
            index_dir=tmp_path / "indexes",
            seed_dir=seed_dir or SEED_DIR,
            **overrides,
        )
        bank = SqlBank(settings.resolved_database_url())
        banks.append(bank)
        chosen = use or embedder
        return FewshotService(settings, bank, lambda: chosen, IndexStore(settings.index_dir))

    yield build
    for bank in banks:
        bank.close()


@pytest.fixture(scope="session")
def seed_client(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[TestClient]:
    """A started service over the real seed bank, shared by tests that only read."""
    root = tmp_path_factory.mktemp("seeded")
    settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=SEED_DIR)
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with TestClient(create_app(settings, service, start="now")) as client:
        yield client
    bank.close()
