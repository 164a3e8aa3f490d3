"""A deployment installs what it uses (issue 17): without an extra, its feature says which extra to install.

Each case runs in a fresh interpreter where the extra's module cannot be imported (a `None` entry in
sys.modules is how Python marks a module as unavailable), against the real app or bank.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from ..helpers import REPO


def run_without(modules: list[str], code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    blocked = "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    script = f"import sys\n{blocked}{textwrap.dedent(code)}"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "FEWSHOT_DATA_DIR": str(tmp_path / "data"),
             "FEWSHOT_INDEX_DIR": str(tmp_path / "indexes")},
    )  # fmt: skip


def test_postgres_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    done = run_without(
        ["psycopg"],
        """
        from fewshot_service.bank import SqlBank
        from fewshot_service.errors import BankError
        try:
            SqlBank("postgresql+psycopg://127.0.0.1:5432/test")
        except BankError as exc:
            print(exc)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'fewshot-service[postgres]'" in done.stdout and "psycopg" in done.stdout


def test_charts_without_matplotlib_answer_501_naming_the_extra_and_the_rest_works(tmp_path: Path) -> None:
    done = run_without(
        ["matplotlib"],
        """
        import json
        from fastapi.testclient import TestClient
        from fewshot_service.api import create_app
        from fewshot_service.settings import Settings
        with TestClient(create_app(Settings(), start="now")) as client:
            chart = client.get("/v1/stats/charts/topic_difficulty.png")
            print(json.dumps([chart.status_code, chart.json(), client.get("/v1/stats").status_code]))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    status, body, stats = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert status == 501 and stats == 200
    assert body["error"]["code"] == "feature_not_installed"
    assert "pip install 'fewshot-service[monitoring]'" in body["error"]["message"]


def test_the_server_core_leaves_out_what_the_extras_add() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert "psycopg" not in core and "matplotlib" not in core
    assert any("psycopg" in need for need in extras["postgres"])
    assert any("matplotlib" in need for need in extras["monitoring"])
    assert any("tiktoken" in need for need in extras["tiktoken"])
