"""Selection strategies: pure functions that choose k examples among filtered candidates."""

from .base import Pick, Strategy
from .ordering import arrange
from .strategies import knn, mmr

STRATEGIES: dict[str, Strategy] = {
    "knn": Strategy("knn", knn, False, "the k most similar examples"),
    "mmr": Strategy("mmr", mmr, True, "maximal marginal relevance: similar to the prompt, not to each other"),
}

__all__ = ["STRATEGIES", "Pick", "Strategy", "arrange", "knn", "mmr"]
