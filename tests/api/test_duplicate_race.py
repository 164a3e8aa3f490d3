"""Identical adds racing through real HTTP servers store one example (issue 16, item 5)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import Embedder, SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..servers import live_server

CALLERS = 12
TEXT = "A train leaves at 9:40 and arrives at 11:05. How long is the journey?"


class LockstepEmbedder:
    """The real model; once armed, each call waits until `parties` calls have embedded, so every request
    reaches the duplicate check together (the window a slower machine leaves open by chance)."""

    def __init__(self, inner: Embedder, parties: int) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.barrier = threading.Barrier(parties, timeout=120)
        self.armed = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.inner.embed(texts)
        if self.armed:
            self.barrier.wait()
        return vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


def race_identical_adds(root: Path, embedder: Embedder, database_url: str | None, on_duplicate: str) -> None:
    """Two replicas over one bank, each behind its own HTTP server; CALLERS threads add the same text at once."""
    lockstep = LockstepEmbedder(embedder, CALLERS)
    with ExitStack() as stack:
        urls, banks = [], []
        for replica in ("a", "b"):
            settings = Settings(
                data_dir=root / "data", index_dir=root / f"indexes-{replica}", seed_on_empty=False,
                database_url=database_url,
            )  # fmt: skip
            bank = SqlBank(settings.resolved_database_url())
            stack.callback(bank.close)
            banks.append(bank)
            service = FewshotService(settings, bank, lambda: lockstep, IndexStore(settings.index_dir))
            app = create_app(settings, service, start="now")
            # Two apps in one process must not build their OpenAPI schemas at the same time (FastAPI's schema
            # generation shares state between apps); in production each replica is its own process.
            app.openapi()
            urls.append(stack.enter_context(live_server(app)))

        def add(caller: int) -> httpx.Response:
            with httpx.Client(base_url=urls[caller % 2], timeout=120) as client:
                body = {"input": TEXT, "output": "1 h 25 min", "status": "approved"}
                return client.post("/v1/examples", json=body, params={"on_duplicate": on_duplicate})

        lockstep.armed = True
        with ThreadPoolExecutor(CALLERS) as pool:
            answers = list(pool.map(add, range(CALLERS)))

        stored = [e for e in banks[0].iter_examples() if e.input == TEXT]
        assert len(stored) == 1
        created = [a for a in answers if a.status_code == 201 and a.json()["examples"]]
        assert len(created) == 1 and created[0].json()["examples"][0]["id"] == stored[0].id
        others = [a for a in answers if a is not created[0]]
        if on_duplicate == "reject":
            assert {a.status_code for a in others} == {409}
            assert all(a.json()["error"]["code"] == "duplicate" for a in others)
        else:
            assert {a.status_code for a in others} == {201}
            assert all(a.json()["skipped"] == [0] and not a.json()["examples"] for a in others)


@pytest.mark.parametrize("on_duplicate", ["reject", "skip"])
def test_concurrent_identical_adds_store_one_on_sqlite(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, on_duplicate: str
) -> None:
    race_identical_adds(tmp_path, embedder, None, on_duplicate)
