"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fewshot_service.embedding import Embedder

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO / "seed_examples"
# A seed bank of two approved examples on different topics, for tests that need a bank but not its content.
TWO_APPROVED = [
    {"external_id": "s-speed", "input": "A bus covers 180 km in 3 hours. What is its average speed?",
     "output": "60 km/h", "topic": "arithmetic", "difficulty": 1, "status": "approved"},
    {"external_id": "s-area", "input": "Find the area of a rectangle 7 m long and 3 m wide.", "output": "21 m²",
     "topic": "geometry", "difficulty": 1, "status": "approved"},
]  # fmt: skip


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, inner: Embedder, model_id: str | None = None) -> None:
        self.inner = inner
        self.model_id = model_id or inner.model_id
        self.dim = inner.dim
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        return self.inner.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def seed_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted(SEED_DIR.glob("*.jsonl")) for line in p.read_text().splitlines() if line]
