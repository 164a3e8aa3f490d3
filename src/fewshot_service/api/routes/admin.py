"""Operator endpoints (admin role): rebuild the index, inspect the one being served."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...index import IndexManifest
from ..deps import Service
from ..middleware.security import require
from ..responses import PROTECTED

router = APIRouter(tags=["operations"], dependencies=[require("admin")], responses=PROTECTED)


class IndexStatus(BaseModel):
    version: str = Field(description="The served index version.")
    model: str
    built_at_revision: int = Field(description="Bank revision the version was built at (later writes are applied).")
    size: int = Field(description="Live (searchable) examples.")
    slots: int = Field(description="Slots, deleted examples included (reclaimed at the next rebuild).")
    ids: list[str] | None = Field(None, description="Ids of the live examples, when asked for (ids=true).")


@router.post("/v1/admin/rebuild", operation_id="rebuild_index", response_model=IndexManifest)
def rebuild(service: Service) -> IndexManifest:
    """Embed what changed, build a new index version, save it and serve it; selection goes on meanwhile."""
    service.served()  # refuse while still starting: start-up is already building
    return service.rebuild()


@router.get("/v1/admin/index", operation_id="get_index_status", response_model=IndexStatus)
def index_status(
    service: Service,
    ids: Annotated[bool, Query(description="Also list the ids of the live examples (one per example).")] = False,
) -> IndexStatus:
    """The index being served: version, size and, on request, every live example's id, to check it
    against the bank (each live, embedded example exactly once)."""
    served = service.served()
    return IndexStatus(
        version=served.manifest.version,
        model=served.manifest.model_id,
        built_at_revision=served.manifest.bank_revision,
        size=served.index.size,
        slots=len(served.index.slots),
        ids=served.index.live_ids() if ids else None,
    )
