"""Installing only the client: the fewshot-service-client wheel in a fresh venv holding nothing but httpx and
pydantic, importing and calling a real `fewshot serve`. Also the in-repo import stays light."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

from ..helpers import REPO
from ..keyed import KEY_OF
from ..system.served import fewshot_serve

HEAVY = ("torch", "faiss", "sentence_transformers", "numpy", "fastapi", "sqlalchemy", "onnxruntime")

CALL = textwrap.dedent(
    """
    import json, sys
    from fewshot_service.client import FewshotClient, NotFound
    heavy = [name for name in {heavy!r} if name in sys.modules]
    with FewshotClient(sys.argv[1], sys.argv[2]) as client:
        answer = client.select("Tom has 5 apples and eats 2. How many are left?", k=2)
        try:
            client.get("missing")
        except NotFound as exc:
            code = exc.code
    found = {{"heavy": heavy, "ids": [e.id for e in answer.examples], "code": code}}
    print(json.dumps({{**found, "file": sys.modules["fewshot_service.client"].__file__}}))
    """
)


def test_the_client_imports_without_the_server_stack() -> None:
    probe = f"import sys, fewshot_service.client; print([m for m in {HEAVY!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def install_client_only(root: Path) -> subprocess.Popen[bytes]:
    """Build the client wheel and install it (and so httpx and pydantic) into a new venv, in the background."""
    venv.create(root / "venv", with_pip=False)
    pip = f"{shlex.quote(sys.executable)} -m pip"
    wheels, target = root / "wheels", root / "venv" / "bin" / "python"
    script = (
        f"{pip} wheel --quiet --no-deps {REPO / 'clients' / 'python'} -w {wheels} && "
        f"{pip} --python {target} install --quiet {wheels}/fewshot_service_client-*.whl"
    )
    return subprocess.Popen(["sh", "-c", script], stderr=subprocess.PIPE)


def test_the_client_distribution_alone_talks_to_a_real_server(tmp_path: Path) -> None:
    installing = install_client_only(tmp_path)  # meanwhile the server starts
    python = tmp_path / "venv" / "bin" / "python"
    # Not this checkout's source: the venv's own copy, as an application would have it.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    with fewshot_serve(tmp_path / "server") as url:
        _, errors = installing.communicate(timeout=300)
        assert installing.returncode == 0, errors.decode()[-3000:]
        script = CALL.format(heavy=HEAVY)
        ran = subprocess.run([python, "-c", script, url, KEY_OF["curator"]], capture_output=True, text=True, env=env)
        assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["heavy"] == [] and len(result["ids"]) == 2 and result["code"] == "not_found"
    assert result["file"].startswith(str(tmp_path / "venv"))
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format=json"], capture_output=True
    )
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"httpx", "pydantic"} <= names and not names & {"numpy", "torch", "fastapi", "faiss-cpu", "sqlalchemy"}
