"""Liveness and readiness probes.

Async on purpose, and reading only memory: a probe must answer at once even when every worker thread waits
on a slow bank. The bank's state is the prober's last answer (bank/health.py), never a live query.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...bank.guard import BankHealth
from ..deps import Service
from ..responses import errors

router = APIRouter(tags=["operations"])


def bank_state(health: BankHealth) -> str:
    return {True: "available", False: "unavailable", None: "unknown"}[health.available]


@router.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (it may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", responses=errors(503))  # still loading, or start-up failed
async def readyz(service: Service) -> dict[str, Any]:
    """Ready to select once the bank has been opened and an index matching it is loaded; selects keep
    working from memory while the bank is unavailable, which `bank` and `can_write` report."""
    served = service.served()  # raises NotReady (503) with the current phase
    health = service.bank.health
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
        "bank": bank_state(health),
        "bank_reason": health.reason,
        "can_write": health.available is not False,
    }


@router.get("/readyz/writes", operation_id="readyz_writes", responses=errors(503))
async def readyz_writes(service: Service) -> dict[str, Any]:
    """Ready for writes: ready to select and the bank answered its last probe (503 bank_unavailable if not)."""
    served = service.served()
    health = service.bank.health
    if health.available is False:
        raise health.refuse()
    return {"status": "ready", "index_version": served.manifest.version, "bank": bank_state(health)}
