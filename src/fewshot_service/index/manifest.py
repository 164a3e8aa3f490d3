"""The build metadata saved beside every index version and checked when it is loaded."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel


class IndexManifest(BaseModel):
    version: str
    kind: str
    model_id: str
    dim: int
    count: int
    faiss_version: str
    bank_revision: int
    created_at: datetime
    build_seconds: float
    checksums: dict[str, str]  # file name -> sha256

    def mismatch(self, *, model_id: str, dim: int, bank_revision: int) -> str | None:
        """Why this index cannot serve the given model and bank, or None when it can."""
        if self.model_id != model_id:
            return f"index was built with model {self.model_id!r}, the service uses {model_id!r}"
        if self.dim != dim:
            return f"index dimension {self.dim} differs from the model's {dim}"
        if self.bank_revision != bank_revision:
            return f"index is at bank revision {self.bank_revision}, the bank is at {bank_revision}"
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
