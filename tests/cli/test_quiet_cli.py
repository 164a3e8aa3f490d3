"""A quiet, helpful CLI (issue 16 item 12): files checked before anything is created, no library chatter.

Import cases run through the runner on real files; log lines are checked on a real `fewshot` process,
because the runner shares the test session's logging set-up and would hide what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fewshot_service import __version__
from fewshot_service.bank import SqlBank
from fewshot_service.cli.main import app
from fewshot_service.settings import Settings

from ..helpers import write_jsonl

FEWSHOT = Path(sys.executable).with_name("fewshot")
GOOD = [
    {
        "external_id": "q1",
        "input": "A train covers 120 km in 2 hours. How fast?",
        "output": "60 km/h",
        "topic": "rates",
    },
    {"external_id": "q2", "input": "Solve 4x = 28.", "output": "x = 7", "topic": "algebra", "difficulty": 1},
    {"external_id": "q3", "input": "What is 25% of 60?", "output": "15", "topic": "percent"},
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "FEWSHOT_DATA_DIR": str(tmp_path / "data"),
        "FEWSHOT_INDEX_DIR": str(tmp_path / "indexes"),
        "FEWSHOT_SEED_ON_EMPTY": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def stored_ids() -> set[str]:
    bank = SqlBank(Settings().resolved_database_url())
    try:
        return {e.external_id or e.id for e in bank.iter_examples()}
    finally:
        bank.close()


def process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`fewshot ...` as a user runs it: its own process, its own logging."""
    full_env = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(FEWSHOT), *args], env=full_env, capture_output=True, text=True, timeout=300)


def test_a_missing_file_creates_nothing_and_says_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = run("import", str(tmp_path / "absent.jsonl"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: no such file: {tmp_path / 'absent.jsonl'}"]
    assert not Path(env["FEWSHOT_DATA_DIR"]).exists()  # no bank, so no migration ran


def test_a_byte_order_mark_is_not_a_bad_first_line(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(row) + "\n" for row in GOOD).encode())
    result = run("import", str(path), "--no-embed")
    assert result.exit_code == 0, result.output
    assert "3 created, 0 updated, 0 unchanged, 0 bad line(s)" in result.output
    assert stored_ids() == {"q1", "q2", "q3"}


def test_a_file_that_is_not_utf8_is_one_line_naming_the_line(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    lines = [
        json.dumps(GOOD[0]).encode(),
        json.dumps({**GOOD[1], "input": "Résous 4x = 28."}, ensure_ascii=False).encode("latin-1"),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run("import", str(path), "--no-embed")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: latin1.jsonl line 2: not UTF-8 text (byte 0xe9 at column 34); nothing was imported"
    ]
    assert "Traceback" not in result.output
    assert not Path(env["FEWSHOT_DATA_DIR"]).exists()


def test_progress_counts_lines_read_bad_ones_included(env: dict[str, str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [GOOD[0], "{not json", {"input": ""}, GOOD[1], "[]"])
    result = run("import", str(path), "--no-embed")
    assert result.exit_code == 1
    assert "5/5" in result.output and "2/5" not in result.output
    assert "2 created, 0 updated, 0 unchanged, 3 bad line(s)" in result.output
    assert all(f"line {n}:" in result.output for n in (2, 3, 5))
    assert stored_ids() == {"q1", "q2"}


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"fewshot-service {__version__}"


def test_select_on_first_use_prints_only_the_examples(env: dict[str, str], tmp_path: Path) -> None:
    assert (
        run("import", str(write_jsonl(tmp_path / "good.jsonl", GOOD)), "--no-embed", "--status", "approved").exit_code
        == 0
    )
    # First use: no index version yet, examples not embedded; the service builds both without a word.
    quiet = process("select", "A car drives 150 km in 3 hours. Speed?", "-k", "1", env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    assert quiet.stdout.startswith("1. [rates,") and "60 km/h" in quiet.stdout
    # PyTorch draws a "Loading weights" bar as it loads the model: not in a quiet command either.
    on_torch = process("select", "Solve 6x = 42.", "-k", "1", env={**env, "FEWSHOT_EMBEDDING_BACKEND": "torch"})
    assert on_torch.returncode == 0 and on_torch.stderr == "", on_torch.stderr
    # -v shows what was hidden: the libraries' lines and the service's INFO lines, never a DEBUG one.
    on_torch_env = {**env, "FEWSHOT_EMBEDDING_BACKEND": "torch"}
    verbose = process("-v", "select", "Solve 5x = 35.", "-k", "1", "--strategy", "hybrid", env=on_torch_env)
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO sentence_transformers" in verbose.stderr and "INFO fewshot_service" in verbose.stderr
    assert " DEBUG " not in verbose.stderr and "Loading weights" not in verbose.stderr


def test_a_model_path_that_is_not_there_is_one_line_naming_the_setting(env: dict[str, str]) -> None:
    """It read "Repo id must use alphanumeric chars" three times (a warning, a log error, the error line), and
    serve bound its port first and then answered 503 for ever."""
    missing = {**env, "FEWSHOT_MODEL": "/no/such/model"}
    said = (
        "error: FEWSHOT_MODEL: there is no model folder at '/no/such/model' (give a sentence-transformers model "
        "folder, or the id of a model in the local Hugging Face cache)"
    )
    for args in (["serve", "--port", "1"], ["select", "hello"]):
        result = process(*args, env=missing)
        assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == said, result.stderr
        assert "Repo id" not in result.stderr and "not using ONNX Runtime" not in result.stderr
        assert "Uvicorn running" not in result.stderr  # serve stops before it binds


def test_a_bad_enumerated_setting_is_one_line_naming_the_variable(env: dict[str, str], tmp_path: Path) -> None:
    typo = {**env, "FEWSHOT_DEFAULT_STRATEGY": "stratifed"}
    for args in (["select", "hello"], ["serve", "--port", "1"]):
        result = process(*args, env=typo)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: FEWSHOT_DEFAULT_STRATEGY: Input should be 'stratified'")
        assert "(got 'stratifed')" in lines[0]
    assert not Path(env["FEWSHOT_DATA_DIR"]).exists()


def test_a_folder_or_a_pipe_is_said_to_be_one_not_a_missing_file(env: dict[str, str], tmp_path: Path) -> None:
    folder = run("import", str(tmp_path))
    assert folder.exit_code == 1
    assert folder.output.strip().splitlines() == [f"error: {tmp_path} is a folder, not a JSONL file"]
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    piped = run("import", str(fifo))
    assert piped.exit_code == 1 and piped.output.startswith(f"error: {fifo} is not a regular file"), piped.output
    assert not (tmp_path / "data").exists()  # nothing created
