"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import Service
from ..responses import errors

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz")
def healthz() -> dict[str, str]:
    """The process is alive (it may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", responses=errors(503))  # still loading, or start-up failed
def readyz(service: Service) -> dict[str, Any]:
    """Ready once the bank is open and an index matching it is loaded."""
    served = service.served()  # raises NotReady (503) with the current phase
    return {
        "status": "ready",
        "index_version": served.manifest.version,
        "examples": served.index.size,
        "bank_revision": served.manifest.bank_revision,
        # The bank revision the served index reflects, the index's build plus the change feed applied since.
        "synced_revision": service.applied_revision,
        "model": served.manifest.model_id,
        # torch (sentence-transformers) or onnx (ONNX Runtime, checked against torch at start).
        "embedding_backend": getattr(service.embedder, "backend", "custom"),
    }
