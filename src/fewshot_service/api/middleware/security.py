"""Route dependencies for authentication, roles and the per-key rate limit.

Every router but the probes and docs declares ``require(role)``. The principal is resolved once per
request (FastAPI caches the dependency): 401 for a missing or unknown key, 429 when its bucket for this
kind of route is empty, 403 when its role is too low. Without authentication nothing is rate limited: the
callers are local (loopback only), and throttling them would only break a developer's own scripts.
Async on purpose: a cached key costs no thread hop; only a key not seen for a few seconds, or the periodic
"do keys exist now?" check, reads the bank, in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ...auth import ANONYMOUS, Authenticator, Principal, Role
from ...errors import Forbidden, RateLimited, Unauthorized
from .ratelimit import RateLimiter, retry_after, route_kind

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def _limit(request: Request, bucket: str, who: str, rate: float | None = None) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.take(bucket, rate)
    if wait:
        raise RateLimited(f"too many requests from {who}; retry later", retry_after=retry_after(wait))


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Principal:
    auth: Authenticator = request.app.state.auth
    address = request.client.host if request.client else "unknown"
    enabled = auth.enabled() if auth.settled() else await run_in_threadpool(auth.enabled)
    if not enabled:
        principal = ANONYMOUS
    else:
        key = credentials.credentials if credentials is not None else None
        found = None
        if key:
            found = auth.cached(key) or await run_in_threadpool(auth.lookup, key)
        if found is None:
            # Failed attempts are charged to the address, so guessing keys is slow as well as hopeless.
            _limit(request, f"address:{address}", f"address {address!r}")
            raise Unauthorized(
                "an API key is required: send Authorization: Bearer <key>" if not key else "unknown or revoked API key",
                field="Authorization",
            )
        kind = route_kind(request.url.path)
        _limit(request, f"key:{found.key_id or found.name}:{kind}", f"key {found.name!r} ({kind} routes)", found.rate)
        principal = found
    request.state.principal = principal  # for the access log
    return principal


def require(role: Role) -> Any:
    """A dependency for a router or route: the caller's key must have at least this role."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        check_role(principal, role)
        return principal

    return Depends(check)


def check_role(principal: Principal, role: Role) -> None:
    """403 unless the caller's key has at least this role."""
    if not principal.may(role):
        raise Forbidden(
            f"this operation needs the {role} role; the key {principal.name!r} has the {principal.role} role",
            field="Authorization",
        )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
