"""Shared fixtures: the real model (loaded once per test run), real SQLite banks and FAISS indexes in tmp dirs."""

from __future__ import annotations

import os

# One OpenMP/torch thread per test process (inherited by the servers and commands the tests start): the suite
# runs on two xdist workers, and two-thread torch teams in every process spin against each other on a small
# machine (a one-text embedding then takes 20x longer). A developer may still set OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
# The order the levels' files are handed to the xdist workers: the folders of long files (real servers,
# outages, the browser) first, so that no long file is left running alone at the end of the run.
LONG_FIRST = ("system", "postgres", "ui", "api", "cli", "unit", "deploy", "data")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's level, so `-m` selects by level without a marker in every file."""
    tests_dir = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests_dir).parts
        if len(relative) > 1 and relative[0] in LEVELS:
            item.add_marker(getattr(pytest.mark, relative[0]))

    def level_rank(item: pytest.Item) -> int:
        level = item.path.relative_to(tests_dir).parts[0]
        return LONG_FIRST.index(level) if level in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=level_rank)  # stable: files and tests keep their order within a level


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return SentenceTransformerEmbedder()


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
