"""Helpers the benchmarks share to describe the machine they ran on."""

from __future__ import annotations

import subprocess
from importlib import metadata


def run_command(*args: str) -> str:
    """A command's output, or "" when it is missing or fails (a description must never stop a benchmark)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
