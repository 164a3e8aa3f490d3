"""The seed bank shipped with the service: curated examples loaded into an empty bank at first start."""

from __future__ import annotations

import json
from pathlib import Path

from ..bank import ExampleBank, ImportCounts
from ..bank.importer import import_file
from ..errors import ConfigurationError


def default_seed_dir() -> Path:
    """The packaged seed_examples/ folder (a wheel carries it inside the package, a checkout beside src/)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "seed_examples"
    if packaged.is_dir():
        return packaged
    return package.parents[1] / "seed_examples"


def seed_files(seed_dir: Path) -> list[Path]:
    """The seed folder's *.jsonl files. A folder that is missing or holds none is a mistyped FEWSHOT_SEED_DIR,
    not a wish for an empty bank (FEWSHOT_SEED_ON_EMPTY=false says that): it was served empty, silently."""
    files = sorted(seed_dir.glob("*.jsonl")) if seed_dir.is_dir() else []
    if not files:
        problem = "holds no *.jsonl file" if seed_dir.is_dir() else "is not a folder"
        raise ConfigurationError(
            f"FEWSHOT_SEED_DIR {str(seed_dir)!r} {problem}, so the empty bank cannot be seeded "
            "(set FEWSHOT_SEED_ON_EMPTY=false to start with an empty bank)",
            field="seed_dir",
        )
    return files


def load_seed_bank(bank: ExampleBank, seed_dir: Path) -> ImportCounts:
    """Import every seed_examples/*.jsonl file strictly: a broken seed file is a bug, not a warning."""
    counts = ImportCounts()
    for path in seed_files(seed_dir):
        counts += import_file(bank, path, strict=True).counts
    return counts


def seed_inputs(seed_dir: Path | None = None) -> list[str]:
    """The seed examples' inputs: the fixed texts a faster embedding backend must reproduce."""
    texts: list[str] = []
    for path in sorted((seed_dir or default_seed_dir()).glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            texts += [json.loads(line)["input"] for line in lines if line.strip()]
    return texts
