"""The seed bank's embeddings, computed once with the default model and shipped beside the seed files.

Embedding the 260 seed inputs took 4 s of two cores at every first start on a slow machine (and in every test
that starts a server on a fresh bank). The shipped vectors are used only for a model of the same id whose own
embedding of a sample of the seed inputs agrees with them; otherwise the seed bank is embedded as any bank is.
`python -m fewshot_service.serving.seed_vectors` writes the file again after the seed examples change; a test
fails while it is out of date.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..bank import ExampleBank
from ..embedding import Embedder
from .seeding import default_seed_dir, seed_inputs

log = logging.getLogger(__name__)
VECTORS_FILE = "embeddings.npz"
# The model's own embedding of this many shipped texts must agree with the file before the rest is trusted.
SAMPLE = 8
# Same model, other runtime (ONNX Runtime against PyTorch) agrees to about 1e-6; another model or weights not.
MIN_AGREEMENT = 0.999


def text_key(text: str) -> str:
    """The exact text's digest: an embedding belongs to the characters embedded, not to a normalised form."""
    return hashlib.sha256(text.encode()).hexdigest()


def write_seed_vectors(embedder: Embedder, seed_dir: Path) -> Path:
    """Embed every seed input with `embedder` and write them, keyed by text, to seed_dir/embeddings.npz."""
    texts = sorted(set(seed_inputs(seed_dir)))
    path = seed_dir / VECTORS_FILE
    np.savez_compressed(
        path,
        model_id=np.array(embedder.model_id),
        keys=np.array([text_key(text) for text in texts]),
        vectors=embedder.embed(texts).astype(np.float32),
    )
    return path


def shipped_vectors(seed_dir: Path, model_id: str) -> dict[str, np.ndarray]:
    """text key -> vector from seed_dir/embeddings.npz, when it exists and was made with model_id."""
    path = seed_dir / VECTORS_FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["model_id"]) != model_id:
                return {}
            return dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    except (OSError, ValueError, KeyError) as exc:  # damaged or of another layout: embed instead
        log.warning("not using the seed embeddings in %s (%s); embedding the seed bank", path, exc)
        return {}


def store_seed_vectors(bank: ExampleBank, embedder: Embedder, seed_dir: Path) -> int:
    """Give the bank's unembedded examples whose input is a seed input its shipped vector, once the model has
    shown it embeds a sample of them alike; how many were stored (the rest is left to embed_missing)."""
    shipped = shipped_vectors(seed_dir, embedder.model_id)
    if not shipped:
        return 0
    rows = [
        (example_id, text)
        for page in bank.iter_unembedded(embedder.model_id, 1000)
        for example_id, text in page
        if text_key(text) in shipped
    ]
    if not rows:
        return 0
    sample = [text for _, text in rows[:: max(1, len(rows) // SAMPLE)]][:SAMPLE]
    expected = np.stack([shipped[text_key(text)] for text in sample])
    agreement = float(np.min(np.sum(embedder.embed(sample) * expected, axis=1)))
    if agreement < MIN_AGREEMENT:
        log.warning(
            "the shipped seed embeddings do not match this model (cosine %.4f < %.3f); embedding the seed bank",
            agreement,
            MIN_AGREEMENT,
        )
        return 0
    bank.store_embeddings(rows, np.stack([shipped[text_key(text)] for _, text in rows]), embedder.model_id)
    return len(rows)


if __name__ == "__main__":
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..embedding import SentenceTransformerEmbedder

    print(write_seed_vectors(SentenceTransformerEmbedder(), default_seed_dir()))
