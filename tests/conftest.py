"""Shared fixtures: the real model (loaded once per test run), real SQLite banks and FAISS indexes in tmp dirs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import Embedder, SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.service import FewshotService
from fewshot_service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO / "seed_examples"


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, inner: Embedder, model_id: str | None = None) -> None:
        self.inner = inner
        self.model_id = model_id or inner.model_id
        self.dim = inner.dim
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def seed_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted(SEED_DIR.glob("*.jsonl")) for line in p.read_text().splitlines() if line]


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
def seed_client(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    """A started service over the real seed bank, shared by tests that only read."""
    root = tmp_path_factory.mktemp("seeded")
    settings = Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=SEED_DIR)
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with TestClient(create_app(settings, service, start="now")) as client:
        yield client
    bank.close()
