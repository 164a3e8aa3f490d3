"""Eight curators writing at once through a real HTTP server: nothing lost, nothing doubled, all selectable."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..servers import live_server

# 64 batches in flight from 8 threads: what is tested is their interleaving, not the volume (4,000 examples took
# 80 s of the suite on a slow machine for no more interleaving than 1,600 give).
WRITERS, PER_WRITER, BATCH = 8, 200, 25


def problem(writer: int, n: int) -> dict[str, object]:
    # Distinct facts per example; on_duplicate=keep because template-made texts are near each other by design.
    return {
        "input": f"Writer {writer} asks: a crate holds {n + 3} boxes of {writer + 2} jars each. How many jars?",
        "output": str((n + 3) * (writer + 2)),
        "external_id": f"w{writer}-{n}",
        "tags": [f"w{writer}-{n}"],
        "status": "approved",
    }


def test_eight_concurrent_writers_lose_nothing(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    settings = Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "indexes", seed_on_empty=False)
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    with live_server(create_app(settings, service, start="now")) as url:

        def write(writer: int) -> list[str]:
            acknowledged = []
            with httpx.Client(base_url=url, timeout=120) as client:
                for start in range(0, PER_WRITER, BATCH):
                    batch = [problem(writer, n) for n in range(start, start + BATCH)]
                    response = client.post("/v1/examples", params={"on_duplicate": "keep"}, json={"examples": batch})
                    assert response.status_code == 201, response.text
                    acknowledged += [e["external_id"] for e in response.json()["examples"]]
            return acknowledged

        with ThreadPoolExecutor(WRITERS) as pool:
            acknowledged = [eid for ids in pool.map(write, range(WRITERS)) for eid in ids]
        assert len(acknowledged) == len(set(acknowledged)) == WRITERS * PER_WRITER

        stored = Counter(e.external_id for e in bank.iter_examples())
        assert set(stored) == set(acknowledged) and set(stored.values()) == {1}
        index = service.served().index
        live_ids = [index.slots.ids[s] for s in range(len(index.slots)) if index.slots.alive[s]]
        assert len(live_ids) == len(set(live_ids)) == WRITERS * PER_WRITER
        assert set(live_ids) == {e.id for e in bank.iter_examples()}

        with httpx.Client(base_url=url, timeout=30) as client:
            for writer, n in random.Random(7).sample([(w, n) for w in range(WRITERS) for n in range(PER_WRITER)], 40):
                body = {"prompt": "How many jars are there in total?", "k": 1, "filters": {"tags": [f"w{writer}-{n}"]}}
                [found] = client.post("/v1/select", json=body).json()["examples"]
                assert found["external_id"] == f"w{writer}-{n}"
    bank.close()
