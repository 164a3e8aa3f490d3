"""Types shared by the selection strategies: pure functions over candidate vectors, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pick:
    """One chosen candidate: its position among the candidates, and why it was chosen."""

    position: int
    relevance: float  # cosine similarity to the prompt
    redundancy: float  # highest cosine similarity to an example picked before it (0 for the first)


# (vectors of the candidates, their relevance, k, diversity in 0..1) -> picks in the order chosen
PickFunction = Callable[[np.ndarray, np.ndarray, int, float], list[Pick]]


@dataclass(frozen=True)
class Strategy:
    name: str
    pick: PickFunction
    # Diversifying strategies choose among a pool of pool_factor·k filtered candidates; others need k.
    needs_pool: bool
    description: str

    def candidates(self, k: int, pool_factor: int) -> int:
        return k * pool_factor if self.needs_pool else k
