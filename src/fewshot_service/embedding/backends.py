"""Choosing the inference backend: the reference (sentence-transformers on PyTorch) or ONNX Runtime.

ONNX Runtime is used only after its embeddings were compared with the reference model's on a fixed set of
texts (the seed bank's inputs) and every pair agreed (cosine >= min_agreement). The export and the verdict
are cached in a folder keyed by the model files and library versions, so later starts load the ONNX model
alone (no PyTorch model load), and a refused export is not retried until something in its key changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .onnx_runtime import OnnxEmbedder, export_onnx
from .protocol import Embedder
from .sentence_transformer import SentenceTransformerEmbedder, resolve_model

log = logging.getLogger(__name__)

VERDICT_FILE = "agreement.json"
# Bumped when export_onnx changes what it writes, so old exports are not reused.
EXPORT_FORMAT = 1
BACKENDS = ("auto", "onnx", "torch")
# torch.onnx.export keeps global state: two exports in one process must not overlap (processes may).
_EXPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Agreement:
    texts: int
    min_cosine: float
    mean_cosine: float


def measure_agreement(reference: Embedder, candidate: Embedder, texts: Sequence[str]) -> Agreement:
    """Cosine between the two backends' embeddings of each text (both are L2-normalised)."""
    if not texts:
        return Agreement(0, 0.0, 0.0)
    cosines = np.sum(reference.embed(texts) * candidate.embed(texts), axis=1)
    return Agreement(len(texts), float(cosines.min()), float(cosines.mean()))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(model: str) -> str:
    """Changes when the model files, the exporter or the runtime change."""
    model_id, location = resolve_model(model)
    parts = [model_id, location, str(EXPORT_FORMAT)]
    parts += [f"{p}={_version(p)}" for p in ("torch", "transformers", "onnxruntime", "tokenizers")]
    root = Path(location)
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def load_embedder(
    model: str,
    backend: str,
    cache_dir: Path,
    agreement_texts: Sequence[str],
    *,
    batch_size: int = 64,
    min_agreement: float = 0.99,
) -> Embedder:
    """The embedder for `backend`: "torch", "onnx" (an error when refused) or "auto" (onnx when it agrees)."""
    if backend not in BACKENDS:
        raise ConfigurationError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return SentenceTransformerEmbedder(model, batch_size)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        if backend == "onnx":
            raise ConfigurationError("the onnx embedding backend needs the onnxruntime package") from exc
        log.info("onnxruntime is not installed: embedding with PyTorch")
        return SentenceTransformerEmbedder(model, batch_size)

    folder = cache_dir / cache_key(model)
    verdict = _read_verdict(folder)
    reference: SentenceTransformerEmbedder | None = None
    if verdict is None or verdict.texts < len(agreement_texts):
        reference = SentenceTransformerEmbedder(model, batch_size)
        verdict = _export_and_check(reference, folder, agreement_texts, batch_size)
    if verdict.texts == 0 or verdict.min_cosine < min_agreement:
        reason = (
            f"ONNX Runtime embeddings disagree with the reference model (min cosine {verdict.min_cosine:.4f} "
            f"< {min_agreement} over {verdict.texts} texts)"
        )
        if backend == "onnx":
            raise EmbeddingError(reason)
        log.warning("%s: embedding with PyTorch", reason)
        return reference or SentenceTransformerEmbedder(model, batch_size)
    log.info(
        "embedding with ONNX Runtime: it agrees with the reference model on %d texts (min cosine %.6f)",
        verdict.texts,
        verdict.min_cosine,
    )
    return OnnxEmbedder(folder, batch_size)


def _export_and_check(
    reference: SentenceTransformerEmbedder,
    folder: Path,
    texts: Sequence[str],
    batch_size: int,
) -> Agreement:
    # Exported into a temporary sibling and renamed, so a crash mid-export leaves no half folder behind.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with _EXPORT_LOCK:
            export_onnx(reference.model, staging, reference.model_id)
        agreement = measure_agreement(reference, OnnxEmbedder(staging, batch_size), texts)
        (staging / VERDICT_FILE).write_text(json.dumps(agreement.__dict__, indent=2))
        existing = _read_verdict(folder)
        if existing is not None and existing.texts >= agreement.texts:
            # Another process (a replica starting beside this one) published first; it may be loading from
            # that folder right now, so keep it and drop this export.
            shutil.rmtree(staging, ignore_errors=True)
            return existing
        if folder.exists():  # an older verdict over fewer texts: replaced
            shutil.rmtree(folder, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:  # another process renamed its export there meanwhile: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
    except EmbeddingError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise EmbeddingError(f"exporting the model to ONNX failed: {exc}") from exc
    return agreement


def _read_verdict(folder: Path) -> Agreement | None:
    try:
        return Agreement(**json.loads((folder / VERDICT_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
