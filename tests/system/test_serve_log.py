"""`fewshot serve`'s log is one JSON object per line from the first line on, model loading included, so a log
shipper never meets a line it cannot parse."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from ..keyed import tiny_seed_dir
from ..servers import free_port
from .test_serve_security import FEWSHOT, environment


def test_a_start_that_loads_the_pytorch_model_logs_only_json_lines(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = environment(
        tmp_path, FEWSHOT_EMBEDDING_BACKEND="torch", FEWSHOT_SEED_DIR=str(tiny_seed_dir(tmp_path / "seed"))
    )
    env.pop("FEWSHOT_LOG_FORMAT", None)  # the default: json
    with log.open("wb") as out:
        process = subprocess.Popen([FEWSHOT, "serve", "--port", str(port)], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(30)
    # transformers draws a "Loading weights" progress bar on stderr unless told not to: it would fail here.
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["message"].startswith("embedding model") for line in lines)
    assert any(line["message"].startswith("ready:") for line in lines)
