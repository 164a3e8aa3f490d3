"""The real thing: `fewshot serve` as a process, on the packaged seed bank, spoken to over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ..servers import free_port


@contextmanager
def serving(root: Path, log: Path) -> Iterator[httpx.Client]:
    port = free_port()
    env = dict(os.environ, FEWSHOT_DATA_DIR=str(root / "data"), FEWSHOT_INDEX_DIR=str(root / "indexes"))
    env.pop("FEWSHOT_SEED_ON_EMPTY", None)
    # The console script installed beside the interpreter running the tests (PATH may not include it).
    executable = Path(sys.executable).with_name("fewshot")
    assert executable.exists(), "the fewshot console script is installed with the package"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(executable), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "not ready within 180 s:\n" + log.read_text()[-3000:]
                time.sleep(0.25)
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_fresh_server_seeds_serves_and_reloads_its_index(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with serving(tmp_path, log) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["examples"] >= 240
        # The default backend: ONNX Runtime, accepted because it agreed with the reference model.
        assert ready["embedding_backend"] == "onnx"
        response = client.post(
            "/v1/select",
            json={"prompt": "Maria buys 3 notebooks at $4 each and a pen for $2. How much does she spend?", "k": 4},
        )
        assert response.status_code == 200
        examples = response.json()["examples"]
        assert len(examples) == 4 and len({e["id"] for e in examples}) == 4
        assert sum(e["topic"] == "arithmetic" for e in examples) >= 3
        assert client.get("/docs").status_code == 200
    first_version = ready["index_version"]

    with serving(tmp_path, log) as client:
        assert client.get("/readyz").json()["index_version"] == first_version
    text = log.read_text()
    assert text.count("empty bank: loaded") == 1  # seeded once, on the first start only
    assert "(loaded: manifest matches the bank and the model)" in text
