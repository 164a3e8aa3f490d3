"""`fewshot serve` refuses to listen beyond loopback without API keys, and says so when it runs without them;
`fewshot keys` manages the keys kept in the bank."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fewshot_service.bank import SqlBank
from fewshot_service.cli.main import app as cli
from fewshot_service.serving.memory import limit_malloc_arenas
from fewshot_service.settings import Settings

from ..helpers import REPO
from ..keyed import SPEC
from ..servers import free_port

FEWSHOT = str(Path(sys.executable).with_name("fewshot"))


def environment(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, FEWSHOT_DATA_DIR=str(root / "data"), FEWSHOT_INDEX_DIR=str(root / "indexes"))
    env.pop("FEWSHOT_API_KEYS", None)
    return {**env, **extra}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "fewshot.example.com"])
def test_serving_beyond_loopback_without_keys_is_refused_with_one_line(tmp_path: Path, host: str) -> None:
    done = subprocess.run(
        [FEWSHOT, "serve", "--host", host, "--port", str(free_port())],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"refusing to listen on {host} without API keys" in lines[0]
    assert not (tmp_path / "indexes").exists()  # refused before the service started


def test_bad_key_settings_stop_serve_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [FEWSHOT, "serve", "--port", str(free_port())],
        env=environment(tmp_path, FEWSHOT_API_KEYS="k1:superuser"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "error: FEWSHOT_API_KEYS entry 1 has role 'superuser'" in done.stderr


def test_on_loopback_without_keys_it_serves_and_logs_that_authentication_is_off(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [FEWSHOT, "serve", "--port", str(free_port())],
            env=environment(tmp_path, FEWSHOT_SEED_ON_EMPTY="false"),
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while "Uvicorn running" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    off = [line for line in lines if "authentication is off" in line["message"]]
    assert len(off) == 1 and off[0]["level"] == "WARNING" and "loopback only (127.0.0.1)" in off[0]["message"]


def test_with_keys_it_may_listen_on_every_interface(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [FEWSHOT, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
            env=environment(tmp_path, FEWSHOT_SEED_ON_EMPTY="false", FEWSHOT_API_KEYS=SPEC),
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while "Uvicorn running on http://0.0.0.0" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
    assert "authentication is off" not in log.read_text()


def test_keys_commands_create_list_and_revoke_keys_in_the_bank(tmp_path: Path) -> None:
    env = {"FEWSHOT_DATA_DIR": str(tmp_path / "data"), "FEWSHOT_INDEX_DIR": str(tmp_path / "indexes")}
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--name", "nightly-job", "--role", "curator"], env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("fsk_") and "shown this once" in created.stderr

    bank = SqlBank(Settings(data_dir=tmp_path / "data").resolved_database_url())
    [stored] = bank.list_keys()
    assert (stored.name, stored.role, stored.revoked_at) == ("nightly-job", "curator", None)
    assert bank.find_key(hashlib.sha256(key.encode()).hexdigest()) == stored
    assert bank.active_key_count() == 1

    listed = runner.invoke(cli, ["keys", "list"], env=env)
    assert listed.exit_code == 0 and "nightly-job" in listed.stdout and key not in listed.stdout
    revoked = runner.invoke(cli, ["keys", "revoke", stored.id], env=env)
    assert revoked.exit_code == 0 and bank.active_key_count() == 0
    assert bank.find_key(hashlib.sha256(key.encode()).hexdigest()) is None
    missing = runner.invoke(cli, ["keys", "revoke", "no-such-id"], env=env)
    assert missing.exit_code == 1 and "no API key with id 'no-such-id'" in missing.stderr
    bad = runner.invoke(cli, ["keys", "create", "--name", "two words", "--role", "reader"], env=env)
    assert bad.exit_code == 1 and "invalid key: name:" in bad.stderr
    fast = runner.invoke(cli, ["keys", "create", "--name", "bulk-job", "--role", "reader", "--rate", "5"], env=env)
    assert fast.exit_code == 0, fast.output
    assert [k.rate_per_second for k in bank.list_keys() if k.name == "bulk-job"] == [5.0]
    assert "rate/s" in runner.invoke(cli, ["keys", "list"], env=env).stdout
    bank.close()


def test_the_image_listens_everywhere_and_says_it_needs_keys() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert '"serve", "--host", "0.0.0.0"' in dockerfile  # so `fewshot serve` refuses to start without keys
    comments = " ".join(line for line in dockerfile.splitlines() if line.startswith("#"))
    assert "FEWSHOT_API_KEYS" in comments and "fewshot keys create" in comments
    assert "FEWSHOT_API_KEYS" in (REPO / "README.md").read_text().split("- Docker:", 1)[1].split("\n- ", 1)[0]


def test_serve_caps_malloc_arenas_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    # glibc here: the cap that keeps the server's memory flat under concurrent writes (benchmarks/load.py).
    assert limit_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
