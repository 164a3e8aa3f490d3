"""The build metadata saved beside every index version and checked when it is loaded."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel


class IndexManifest(BaseModel):
    version: str
    kind: str  # flat, ivf or hnsw (index/kinds.py)
    # Versions written before these fields existed were flat float32 indexes.
    storage: str = "float32"  # float32, float16 or sq8
    params: dict[str, int] = {}  # the kind's parameters: nlist and nprobe, or M and efSearch
    model_id: str
    dim: int
    count: int
    faiss_version: str
    bank_revision: int
    created_at: datetime
    build_seconds: float
    checksums: dict[str, str]  # file name -> sha256

    def model_mismatch(self, *, model_id: str, dim: int) -> str | None:
        """Why this index cannot serve queries embedded by the given model, or None when it can."""
        if self.model_id != model_id:
            return f"index was built with model {self.model_id!r}, the service uses {model_id!r}"
        if self.dim != dim:
            return f"index dimension {self.dim} differs from the model's {dim}"
        return None

    def mismatch(self, *, model_id: str, dim: int, bank_revision: int) -> str | None:
        """Why this index does not describe exactly the given model and bank revision, or None when it does."""
        model = self.model_mismatch(model_id=model_id, dim=dim)
        if model is not None:
            return model
        if self.bank_revision != bank_revision:
            return f"index is at bank revision {self.bank_revision}, the bank is at {bank_revision}"
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
