"""The Dockerfile, the README's two commands and CI's script agree with what the project really has.

No Docker engine runs here, so the Dockerfile is parsed and every command it runs is checked to exist.
"""

from __future__ import annotations

import re
import shlex
import tomllib

from typer.testing import CliRunner

from fewshot_service.api import create_app
from fewshot_service.cli.main import app as cli
from fewshot_service.settings import Settings

from ..helpers import REPO


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_image_is_cpu_only_with_torch_installed_before_the_package() -> None:
    runs = [args for instruction, args in dockerfile() if instruction == "RUN"]
    torch = next(n for n, run in enumerate(runs) if "torch==" in run)
    package = next(n for n, run in enumerate(runs) if re.search(r"pip install '?\.(\[[a-z,]+\])?'?(\s|$)", run))
    assert torch < package
    # The image is the one for every deployment, PostgreSQL replicas and the health charts included.
    extras = re.search(r"\.\[([a-z,]+)\]", runs[package])
    assert extras and {"postgres", "monitoring"} <= set(extras.group(1).split(","))
    assert "/whl/cpu" in runs[torch]
    pinned = re.search(r"torch==([\d.]+)", runs[torch])
    assert pinned and pinned.group(1) == "2.13.0"


def test_files_the_image_copies_exist() -> None:
    for instruction, args in dockerfile():
        if instruction == "COPY":
            *sources, _target = args.split()
            for source in sources:
                assert (REPO / source).exists(), source


def test_image_serves_fewshot_on_all_interfaces_with_volumes() -> None:
    instructions = dict(dockerfile())
    command = shlex.split(instructions["CMD"].strip("[]").replace('",', '"'))
    assert command[:2] == ["fewshot", "serve"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fewshot"] == "fewshot_service.cli:app"
    # The options the image passes exist on the real command.
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    for option in (word for word in command[2:] if word.startswith("--")):
        assert option in help_text
    assert command[command.index("--host") + 1] == "0.0.0.0" and instructions["EXPOSE"] == "8000"
    volumes = instructions["VOLUME"]
    assert "/data" in volumes and "/indexes" in volumes
    env = instructions["ENV"]
    assert "FEWSHOT_DATA_DIR=/data" in env and "FEWSHOT_INDEX_DIR=/indexes" in env


def test_the_onnx_cache_is_in_a_folder_the_image_gives_its_user() -> None:
    # The user's home (/app) is root's: the default ~/.cache could not be written, and ONNX would be lost.
    instructions = dockerfile()
    env = dict(item.split("=", 1) for item in " ".join(a for i, a in instructions if i == "ENV").split())
    cache = env["FEWSHOT_MODEL_CACHE_DIR"]
    run = " ".join(a for i, a in instructions if i == "RUN")
    owned = re.search(r"chown fewshot ([/\w ]+)", run)
    assert owned is not None
    assert any(cache == folder or cache.startswith(folder + "/") for folder in owned.group(1).split())


def test_healthcheck_probes_a_real_route() -> None:
    probe = dict(dockerfile())["HEALTHCHECK"]
    path = re.search(r"127\.0\.0\.1:8000(/\w+)", probe)
    assert path is not None
    assert path.group(1) in create_app(Settings()).openapi()["paths"]


def test_readme_quickstart_is_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in re.findall(r"```(?:bash|sh)?\n(.*?)```", quickstart, re.S)[0].splitlines()]
    commands = [c for c in commands if c and not c.startswith("#")]
    assert commands == ["make serve", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^serve:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ci[-1] == "make test"
