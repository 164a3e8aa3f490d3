"""A rebuild whose index directory cannot take the new version (full disk, size limit, read-only).

The process's file-size limit (RLIMIT_FSIZE) makes every write past it fail as a full disk would (EFBIG
instead of ENOSPC), without privileges. The rebuild must fail clearly, keep the served version current and
serving, and leave nothing it half wrote.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fewshot_service.bank import SqlBank
from fewshot_service.embedding import Embedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.rebuild import build_version
from fewshot_service.serving.seeding import load_seed_bank

from ..helpers import SEED_DIR
from ..servers import free_port

FEWSHOT = str(Path(sys.executable).with_name("fewshot"))
# Smaller than the seed bank's index file (260 vectors of 384 floats), larger than anything else written.
LIMIT_BYTES = 200_000


def _prepared(root: Path, embedder: Embedder) -> str:
    """A seeded SQLite bank and one published index version; that version's name."""
    bank = SqlBank(f"sqlite:///{root / 'data' / 'bank.sqlite3'}")
    bank.create_schema()
    load_seed_bank(bank, SEED_DIR)
    _, manifest = build_version(bank, embedder, IndexStore(root / "indexes"))
    bank.close()
    return manifest.version


def _env(root: Path) -> dict[str, str]:
    return dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_ON_EMPTY="false",
        FEWSHOT_EMBEDDING_BACKEND="torch",
        FEWSHOT_LOG_FORMAT="text",
        HF_HUB_OFFLINE="1",
    )


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def _left_behind(root: Path, served: str) -> list[str]:
    indexes = root / "indexes"
    versions = sorted(p.name for p in (indexes / "versions").iterdir())
    return [p.name for p in (indexes / "tmp").iterdir()] + [v for v in versions if v != served]


def test_a_cli_rebuild_that_cannot_write_exits_1_with_one_line_and_leaves_the_served_version(
    tmp_path: Path, embedder: Embedder
) -> None:
    served = _prepared(tmp_path, embedder)
    done = subprocess.run(
        [FEWSHOT, "rebuild"], env=_env(tmp_path), capture_output=True, text=True, timeout=300, preexec_fn=_limited
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the served index version is unchanged" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "indexes" / "CURRENT").read_text().strip() == served
    assert _left_behind(tmp_path, served) == []


def test_an_api_rebuild_that_cannot_write_answers_507_and_keeps_serving(tmp_path: Path, embedder: Embedder) -> None:
    served = _prepared(tmp_path, embedder)
    port = free_port()
    server = subprocess.Popen(
        [FEWSHOT, "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))

        answer = httpx.post(f"{base}/v1/admin/rebuild", timeout=120)
        assert answer.status_code == 507, answer.text
        assert answer.json()["error"]["code"] == "index_storage_unavailable"
        assert "unchanged" in answer.json()["error"]["message"]
        assert httpx.get(f"{base}/readyz").json()["index_version"] == served
        select = httpx.post(f"{base}/v1/select", json={"prompt": "What is 12 times 3?", "k": 3})
        assert select.status_code == 200 and len(select.json()["examples"]) == 3
        assert (tmp_path / "indexes" / "CURRENT").read_text().strip() == served
        assert _left_behind(tmp_path, served) == []
    finally:
        server.terminate()
        server.wait(timeout=30)
