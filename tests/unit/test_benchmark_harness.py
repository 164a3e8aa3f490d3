"""The benchmarks' one percentile: every script's p50/p99 means the same thing."""

from __future__ import annotations

import math
import sys

import pytest

from .. import helpers

sys.path.insert(0, str(helpers.REPO / "benchmarks"))  # the scripts import the harness by name, as here
from harness import percentile


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # nearest-rank would say 2 or 3
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert percentile([1.0, float("nan"), 3.0], 50) == 2.0
    assert math.isnan(percentile([], 50))


def test_every_benchmark_imports_only_modules_that_exist() -> None:
    """The scripts are not run by the suite, so a renamed helper module would break them silently."""
    import ast
    import importlib.util

    folder = helpers.REPO / "benchmarks"
    import re
    import tomllib

    local = {path.stem for path in folder.glob("*.py")}
    extras = tomllib.loads((helpers.REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    local |= {re.split(r"[<>=\[ ]", need)[0].replace("-", "_") for need in extras["bench"]}  # pip install .[bench]
    for script in folder.glob("*.py"):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top in local or importlib.util.find_spec(top) is not None, f"{script.name} imports {name}"
