"""Operator endpoints (admin role once authentication lands)."""

from __future__ import annotations

from fastapi import APIRouter

from ...index import IndexManifest
from ..deps import Service

router = APIRouter(tags=["operations"])


@router.post("/v1/admin/rebuild", response_model=IndexManifest)
def rebuild(service: Service) -> IndexManifest:
    """Embed what changed, build a new index version, save it and serve it; selection goes on meanwhile."""
    service.served()  # refuse while still starting: start-up is already building
    return service.rebuild()
