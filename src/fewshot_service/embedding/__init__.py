"""Embedding models: turn an example's input (and the prompt) into a normalised vector."""

from .backends import BACKENDS, Agreement, load_embedder, measure_agreement
from .onnx_runtime import OnnxEmbedder
from .protocol import Embedder
from .sentence_transformer import PACKAGED_MODEL_ID, SentenceTransformerEmbedder

__all__ = [
    "BACKENDS",
    "PACKAGED_MODEL_ID",
    "Agreement",
    "Embedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "load_embedder",
    "measure_agreement",
]
