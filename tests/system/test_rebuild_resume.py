"""Offline rebuilds: stored embeddings are reused, an interrupted run resumes where it stopped, a rebuild
killed while writing leaves the served version in place, and a swap never fails a request in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.bank.schema import examples
from fewshot_service.embedding import Embedder, SentenceTransformerEmbedder
from fewshot_service.index import IndexStore
from fewshot_service.models import ExampleCreate, ExampleImport
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.serving.rebuild import build_version
from fewshot_service.settings import Settings

from ..conftest import ServiceFactory
from ..helpers import CountingEmbedder
from ..keyed import tiny_seed_dir
from ..servers import live_server

FEWSHOT = str(Path(sys.executable).with_name("fewshot"))


class Interrupted(Exception):
    """Stands for the process dying in the middle of embedding."""


class DiesAfter:
    """The real embedder, failing on the call after `calls` successful ones."""

    def __init__(self, inner: Embedder, calls: int) -> None:
        self.inner, self.calls_left = inner, calls
        self.model_id, self.dim = inner.model_id, inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.calls_left == 0:
            raise Interrupted
        self.calls_left -= 1
        return self.inner.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


def problems(count: int, start: int = 0) -> list[ExampleImport]:
    return [
        ExampleImport(
            external_id=f"p{n}",
            input=f"A shop sells {n + 2} boxes of {n % 9 + 3} pencils. How many pencils does it sell?",
            output=str((n + 2) * (n % 9 + 3)),
            topic="arithmetic",
        )
        for n in range(start, start + count)
    ]


def unembedded_bank(root: Path, count: int) -> SqlBank:
    """A bank of count examples imported without embeddings (as `fewshot import --no-embed` leaves them)."""
    bank = SqlBank(f"sqlite:///{root / 'data' / 'bank.sqlite3'}")
    bank.create_schema()
    bank.upsert(problems(count))
    return bank


def embedded_revisions(bank: SqlBank) -> dict[str, int]:
    """id -> bank revision of each embedded example's last write (storing an embedding is a write)."""
    with bank.engine.connect() as conn:
        rows = conn.execute(select(examples.c.id, examples.c.revision).where(examples.c.embedding.is_not(None)))
        return {row.id: row.revision for row in rows}


def test_an_interrupted_rebuild_resumes_without_redoing_finished_batches(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    bank = unembedded_bank(tmp_path, 40)
    store = IndexStore(tmp_path / "indexes")
    with pytest.raises(Interrupted):
        build_version(bank, DiesAfter(embedder, calls=3), store, page_size=8)
    # Three batches of 8 were embedded and committed before it died; nothing was published.
    assert bank.count_unembedded(embedder.model_id) == 40 - 24
    assert store.current_version() is None
    finished = embedded_revisions(bank)

    counting = CountingEmbedder(embedder)
    index, manifest = build_version(bank, counting, store, page_size=8)
    assert counting.texts_embedded == 16  # only the two batches it had not reached
    assert manifest.count == index.size == 40 and store.current_version() == manifest.version
    assert {i: r for i, r in embedded_revisions(bank).items() if i in finished} == finished
    bank.close()


def test_a_rebuild_embeds_only_what_changed(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    bank = unembedded_bank(tmp_path, 30)
    store = IndexStore(tmp_path / "indexes")
    counting = CountingEmbedder(embedder)
    build_version(bank, counting, store, page_size=16)
    assert counting.texts_embedded == 30

    build_version(bank, counting, store, page_size=16)
    assert counting.texts_embedded == 30  # everything reused

    edited, relabelled = problems(2)
    bank.upsert([edited.model_copy(update={"input": "A shop sells 2 crates of 3 pens. How many pens?"})])
    bank.upsert([relabelled.model_copy(update={"topic": "counting", "status": "pending"})])
    _, manifest = build_version(bank, counting, store, page_size=16)
    assert counting.texts_embedded == 31  # the edited input only; a metadata change needs no model call
    assert manifest.count == 30
    other_model = CountingEmbedder(embedder, model_id="another/model")
    build_version(bank, other_model, store, page_size=16)
    assert other_model.texts_embedded == 30  # embeddings of another model are not reused
    bank.close()


def _env(root: Path, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_ON_EMPTY="false",
        HF_HUB_OFFLINE="1",
        **extra,
    )


def test_a_rebuild_killed_while_embedding_resumes_from_its_last_batch(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    total = 300
    bank = unembedded_bank(tmp_path, total)
    env = _env(tmp_path, FEWSHOT_EMBED_BATCH_SIZE="10")
    process = subprocess.Popen([FEWSHOT, "rebuild"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while bank.count_unembedded(embedder.model_id) > total - 30:  # wait for three committed batches
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = embedded_revisions(bank)
    assert 30 <= len(finished) < total

    done = subprocess.run([FEWSHOT, "rebuild"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{total} examples" in done.stdout
    # The batches finished before the kill were not embedded (nor written) again.
    assert {i: r for i, r in embedded_revisions(bank).items() if i in finished} == finished
    assert bank.count_unembedded(embedder.model_id) == 0
    bank.close()


def _build_folder(tmp_dir: Path) -> bool:
    try:
        return any(entry.is_dir() for entry in os.scandir(tmp_dir))
    except FileNotFoundError:
        return False


def test_a_rebuild_killed_while_writing_leaves_the_served_version(
    tmp_path: Path, make_service: ServiceFactory, embedder: SentenceTransformerEmbedder
) -> None:
    service = make_service(seed_on_empty=False)
    first = service.start()
    rng = np.random.default_rng(0)
    for start in range(0, 6000, 1000):
        vectors = rng.standard_normal((1000, embedder.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = [ExampleCreate(input=f"stored example {start + n}", status="approved") for n in range(1000)]
        service.bank.insert(records, vectors, embedder.model_id, "test")
    served = service.rebuild().version  # the version a server would be serving
    tmp_dir = tmp_path / "indexes" / "tmp"

    # Killed the moment its build folder appears (while the index files are written), a few times over.
    kills = 0
    for _ in range(5):
        process = subprocess.Popen([FEWSHOT, "rebuild"], env=_env(tmp_path), stdout=subprocess.DEVNULL)
        while process.poll() is None and not _build_folder(tmp_dir):
            pass
        process.send_signal(signal.SIGKILL)
        if process.wait() == -signal.SIGKILL and _build_folder(tmp_dir):
            kills += 1
            assert service.store.current_version() == served
        if kills == 2:
            break
    assert kills >= 1, "the rebuild always finished before it could be killed mid-write"

    # The next start (or rebuild) clears what the killed builds left, and serves the old version untouched.
    restarted = make_service(seed_on_empty=False)
    report = restarted.start()
    assert (report.index_action, report.index_version) == ("loaded", served) and served != first.index_version
    assert restarted.served().index.size == 6000
    assert not _build_folder(tmp_dir)


def test_a_swap_under_concurrent_select_traffic_fails_no_request(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        index_dir=tmp_path / "indexes",
        seed_dir=tiny_seed_dir(tmp_path / "seed"),
        rate_limit_per_second=0,
        index_kind="ivf",  # an approximate index being swapped under the searches
    )
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: embedder, IndexStore(settings.index_dir))
    failures: list[str] = []
    versions: set[str] = set()
    served = 0
    stop = threading.Event()
    with live_server(create_app(settings, service, start="now")) as url:

        def select() -> None:
            nonlocal served
            with httpx.Client(base_url=url, timeout=60) as client:
                while not stop.is_set():
                    response = client.post("/v1/select", json={"prompt": "How many apples are left?", "k": 3})
                    if response.status_code != 200 or len(response.json()["examples"]) != 3:
                        failures.append(f"{response.status_code}: {response.text[:300]}")
                    else:
                        versions.add(response.json()["index_version"])
                        served += 1

        readers = [threading.Thread(target=select) for _ in range(4)]
        for reader in readers:
            reader.start()
        with httpx.Client(base_url=url, timeout=120) as admin:
            for _ in range(3):
                time.sleep(0.3)
                response = admin.post("/v1/admin/rebuild")
                assert response.status_code == 200, response.text
                assert response.json()["kind"] == "ivf"
            time.sleep(0.3)
        stop.set()
        for reader in readers:
            reader.join()
    bank.close()
    assert not failures, failures[:3]
    assert served > 20 and len(versions) >= 3
