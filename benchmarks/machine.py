"""Helpers the benchmarks share: describing the machine they ran on, recording results in RESULTS.md."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path


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


def record_section(text: str, section: str, path: Path) -> None:
    """Append a run at the end of its section of RESULTS.md (created if missing); other sections untouched."""
    content = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if section not in content:
        content = content.rstrip("\n") + f"\n\n{section}\n"
    start = content.index(section) + len(section)
    following = content.find("\n## ", start)
    end = len(content) if following < 0 else following
    rest = content[end:].lstrip("\n")
    path.write_text(content[:end].rstrip("\n") + "\n\n" + text.strip() + "\n" + ("\n" + rest if rest else ""), "utf-8")
