"""What the service needs from an embedding model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens the model's tokenizer makes of each text (no truncation)."""
