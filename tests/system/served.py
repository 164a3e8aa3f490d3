"""`fewshot serve` as a process on a tiny seed bank with API keys, for the client and adapter tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..keyed import SPEC, tiny_seed_dir
from ..servers import free_port, wait_until_answers


@contextmanager
def fewshot_serve(root: Path, **settings: str) -> Iterator[str]:
    """The base URL of a ready server whose keys are tests/keyed.py's; settings are FEWSHOT_* overrides. Its
    log (stdout and stderr) is root / "server.log"."""
    port = free_port()
    env = dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_DIR=str(tiny_seed_dir(root / "seed")),
        FEWSHOT_API_KEYS=SPEC,
        FEWSHOT_LOG_FORMAT="text",
    )
    env.update({f"FEWSHOT_{name.upper()}": value for name, value in settings.items()})  # may override the above
    env.pop("FEWSHOT_SEED_ON_EMPTY", None)
    log = root / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("fewshot")), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(url, process, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
