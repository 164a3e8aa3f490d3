"""Who the caller is: what a client (the workbench) needs to offer only what the key may do."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...auth import Role
from ..middleware.security import CurrentPrincipal, require
from ..responses import PROTECTED

router = APIRouter(tags=["operations"], dependencies=[require("reader")], responses=PROTECTED)


class Me(BaseModel):
    name: str = Field(description="The key's name (the actor recorded in history); 'anonymous' without keys.")
    role: Role
    auth_enabled: bool = Field(description="False when the service runs without keys (loopback only).")


@router.get("/v1/me", response_model=Me, operation_id="whoami")
def whoami(principal: CurrentPrincipal) -> Me:
    """The calling key's name and role."""
    # Only the anonymous principal of a service without keys is unauthenticated.
    return Me(name=principal.name, role=principal.role, auth_enabled=principal.authenticated)
