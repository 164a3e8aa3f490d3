"""`fewshot serve` stopping before it is ready: a taken port is said at once, and a stop during start-up is a
clean shutdown, never an abort from a native library torn down mid-load."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from ..keyed import tiny_seed_dir
from ..servers import free_port, wait_until_answers

FEWSHOT = str(Path(sys.executable).with_name("fewshot"))


def serve_env(root: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_DIR=str(tiny_seed_dir(root / "seed")),
        FEWSHOT_LOG_FORMAT="text",
    )
    for name in ("FEWSHOT_API_KEYS", "FEWSHOT_SEED_ON_EMPTY", "FEWSHOT_DATABASE_URL"):
        env.pop(name, None)
    return env


def test_a_taken_port_is_refused_at_once_naming_it_before_anything_loads(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [FEWSHOT, "serve", "--port", str(port)],
            env=serve_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in done.stderr
    assert "--port" in done.stderr and "FEWSHOT_PORT" in done.stderr
    assert "Traceback" not in done.stderr and "terminate called" not in done.stderr
    # Refused before the model and the index load: no index was built.
    assert not (tmp_path / "indexes").exists()


def test_a_stop_during_start_up_waits_for_it_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("ab") as out:
        # The PyTorch backend: loading it takes seconds, long enough to stop the server in the middle.
        env = {**serve_env(tmp_path), "FEWSHOT_EMBEDDING_BACKEND": "torch"}
        process = subprocess.Popen(
            [FEWSHOT, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Listening (/healthz) but not ready (/readyz): the start-up is under way.
        wait_until_answers(url, process, log, path="/healthz", timeout=120, interval=0.05)
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503, "ready already: nothing to interrupt"
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "terminate called" not in text and "Aborted" not in text, text[-3000:]
    # uvicorn shuts down gracefully, then lets the signal end the process as it would have (-SIGTERM): not
    # SIGABRT, and only after the start-up finished and the application's shutdown completed.
    assert status in (0, -signal.SIGTERM), (status, text[-3000:])
    assert "waiting for the start-up under way to finish" in text
    assert text.index("ready:") < text.index("Application shutdown complete")


def test_a_port_out_of_range_is_refused_naming_the_option(tmp_path: Path) -> None:
    # 70000 was passed on to the socket, which listened on 70000 % 65536 = 4464 while the log said 70000.
    env = {**serve_env(tmp_path), "COLUMNS": "200"}  # click's box would wrap the message
    for port, bound in (("70000", "less than or equal to 65535"), ("0", "greater than or equal to 1")):
        done = subprocess.run([FEWSHOT, "serve", "--port", port], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "Invalid value for '--port'" in done.stderr and bound in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_an_index_dir_that_cannot_be_made_stops_serve_before_it_binds(tmp_path: Path) -> None:
    # It bound, failed the start-up in the background with a traceback and answered 503 for ever.
    (tmp_path / "indexes").write_text("a file where the index folder should be")
    done = subprocess.run(
        [FEWSHOT, "serve", "--port", str(free_port())],
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot create the index folders in {str(tmp_path / 'indexes')!r} (FEWSHOT_INDEX_DIR): Not a directory"
    )
    assert "Traceback" not in done.stderr


def test_a_seed_dir_that_is_not_there_stops_serve_before_it_binds(tmp_path: Path) -> None:
    # A mistyped FEWSHOT_SEED_DIR served an empty bank, saying only "loaded 0 seed examples" at INFO.
    env = {**serve_env(tmp_path), "FEWSHOT_SEED_DIR": str(tmp_path / "seeds-mistyped")}
    done = subprocess.run(
        [FEWSHOT, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: FEWSHOT_SEED_DIR {str(tmp_path / 'seeds-mistyped')!r} is not a folder"), last
    assert "FEWSHOT_SEED_ON_EMPTY=false" in last and "Traceback" not in done.stderr
