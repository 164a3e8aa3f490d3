"""Embedding models: turn an example's input (and the prompt) into a normalised vector."""

from .protocol import Embedder
from .sentence_transformer import PACKAGED_MODEL_ID, SentenceTransformerEmbedder

__all__ = ["PACKAGED_MODEL_ID", "Embedder", "SentenceTransformerEmbedder"]
