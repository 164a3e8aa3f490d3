"""API keys kept in the bank: admins create them (the key is shown once), list and revoke them."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from ...auth import KeyCreate, KeyCreated, KeyInfo
from ..deps import Actor, AuthDep
from ..middleware.security import require
from ..responses import PROTECTED, WITH_BODY, errors

router = APIRouter(tags=["operations"], dependencies=[require("admin")], responses=PROTECTED)
log = logging.getLogger(__name__)
KeyId = Annotated[str, Path(max_length=64, description="The key's id (from the list), not the key.")]


@router.post(
    "/v1/admin/keys",
    operation_id="create_key",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={**WITH_BODY, **errors(409)},
)
def create_key(body: KeyCreate, auth: AuthDep, actor: Actor) -> KeyCreated:
    """Create a key with a name and a role. The answer holds the key itself, this once: only its sha256 is
    stored. The first key created turns authentication on for a server that had none."""
    created = auth.create(body)
    log.info(
        "API key created", extra={"key_id": created.id, "key_name": created.name, "role": created.role, "by": actor}
    )
    return created


@router.get("/v1/admin/keys", operation_id="list_keys", response_model=list[KeyInfo])
def list_keys(auth: AuthDep) -> list[KeyInfo]:
    """Every key in the bank, revoked ones included, newest first (never the keys themselves). Keys from
    FEWSHOT_API_KEYS are not listed: they live in the settings."""
    return auth.list()


@router.delete(
    "/v1/admin/keys/{key_id}", operation_id="revoke_key", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404)
)
def revoke_key(key_id: KeyId, auth: AuthDep, actor: Actor) -> Response:
    """Revoke a key: this server refuses it from now on, other replicas within 5 seconds. Revoking a
    revoked key changes nothing."""
    revoked = auth.revoke(key_id)
    log.info("API key revoked", extra={"key_id": revoked.id, "key_name": revoked.name, "by": actor})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
