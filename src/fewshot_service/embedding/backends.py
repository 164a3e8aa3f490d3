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
EXPORT_FORMAT = 2
BACKENDS = ("auto", "onnx", "torch")
# torch.export keeps global state: two exports in one process must not overlap (processes may).
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
    parts += [f"{p}={_version(p)}" for p in ("torch", "transformers", "onnxscript", "onnxruntime", "tokenizers")]
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
    lanes: int = 1,
) -> Embedder:
    """The embedder for `backend`: "torch", "onnx" (an error when refused) or "auto" (onnx when it agrees).

    auto never fails for ONNX's sake: whatever stops ONNX Runtime (no package, a cache that cannot be written,
    an export or a load that fails, a disagreement) is one warning line, and PyTorch embeds instead."""
    if backend not in BACKENDS:
        raise ConfigurationError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return SentenceTransformerEmbedder(model, batch_size)
    reference = _Reference(model, batch_size)
    try:
        onnx = _checked_onnx(reference, cache_dir, agreement_texts, batch_size, min_agreement, lanes)
    except EmbeddingError as exc:
        if backend == "onnx":
            raise
        log.warning("not using ONNX Runtime, embedding with PyTorch: %s", exc.message)
        return reference.get()
    return onnx


class _Reference:
    """The PyTorch model, loaded when first needed and at most once: a start that finds a checked export
    in the cache never loads it; one that exports or falls back loads it once for both."""

    def __init__(self, model: str, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self._loaded: SentenceTransformerEmbedder | None = None

    def get(self) -> SentenceTransformerEmbedder:
        if self._loaded is None:
            self._loaded = SentenceTransformerEmbedder(self.model, self.batch_size)
        return self._loaded


def _checked_onnx(
    reference: _Reference,
    cache_dir: Path,
    texts: Sequence[str],
    batch_size: int,
    min_agreement: float,
    lanes: int = 1,
) -> OnnxEmbedder:
    """The cached (or freshly exported) ONNX model once it agrees with the reference; EmbeddingError when not."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise EmbeddingError("the onnx embedding backend needs the onnxruntime package") from exc
    folder = cache_dir / cache_key(reference.model)
    verdict = _read_verdict(folder)
    if verdict is None or verdict.texts < len(texts):
        # Loaded outside the export's error handling: a model that cannot load is no reason to try PyTorch.
        model = reference.get()
        try:
            verdict = _export_and_check(model, folder, texts, batch_size)
        except OSError as exc:  # the cache folder cannot be made or written (a read-only home, a bad path)
            raise EmbeddingError(
                f"cannot write the ONNX export to {cache_dir} ({exc.strerror or exc}); "
                "set FEWSHOT_MODEL_CACHE_DIR to a writable folder"
            ) from exc
    if verdict.texts == 0 or verdict.min_cosine < min_agreement:
        raise EmbeddingError(
            f"ONNX Runtime embeddings disagree with the reference model (min cosine {verdict.min_cosine:.4f} "
            f"< {min_agreement} over {verdict.texts} texts)"
        )
    embedder = OnnxEmbedder(folder, batch_size, lanes=lanes)
    log.info(
        "embedding with ONNX Runtime: it agrees with the reference model on %d texts (min cosine %.6f)",
        verdict.texts,
        verdict.min_cosine,
    )
    return embedder


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
