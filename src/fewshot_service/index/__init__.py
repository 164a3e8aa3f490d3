"""The FAISS index: build, filtered search, add, remove, and versions saved with a manifest."""

from .kinds import IndexOptions
from .manifest import IndexManifest
from .store import IndexStore
from .vector_index import Hits, Pool, VectorIndex

__all__ = ["Hits", "IndexManifest", "IndexOptions", "IndexStore", "Pool", "VectorIndex"]
