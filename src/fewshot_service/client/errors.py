"""Typed exceptions for the service's error answers: one class per status, all carrying the error body."""

from __future__ import annotations

from typing import Any

import httpx


class FewshotAPIError(Exception):
    """An error answer: `code`, `message`, `field` from its body, `request_id` from its X-Request-ID."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.request_id = request_id
        self.details = details or {}  # members beyond code/message/field, e.g. the duplicates of a 409

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls cls(*self.args), the one formatted text, which __init__ cannot take: a
        # ProcessPoolExecutor worker's error then broke the pool. Rebuild from the attributes instead; the
        # state (__dict__) brings back the rest, notes and attributes set later included.
        rebuilt = (type(self), self.status, self.code, self.message, self.field, self.request_id, self.details)
        return _rebuild, rebuilt, self.__dict__


def _rebuild(
    kind: type[FewshotAPIError],
    status: int,
    code: str,
    message: str,
    field: str | None,
    request_id: str | None,
    details: dict[str, Any],
) -> FewshotAPIError:
    return kind(status, code, message, field=field, request_id=request_id, details=details)


def refused(field: str, problem: str) -> ValidationFailed:
    """The 422 the service would answer, raised before sending for what the client can tell is wrong itself
    (request_id None: nothing was sent). Named like the service's: field dotted, message "field: problem"."""
    return ValidationFailed(422, "invalid_input", f"{field}: {problem}", field=field)


class Unauthorized(FewshotAPIError):
    """401: no API key, or one the service does not know."""


class Forbidden(FewshotAPIError):
    """403: the key's role does not allow the operation."""


class NotFound(FewshotAPIError):
    """404: no such example (or other resource)."""


class Conflict(FewshotAPIError):
    """409: a duplicate, a taken external_id or a stale version."""


class ValidationFailed(FewshotAPIError):
    """422: a value sent is wrong; `field` names it."""


class RateLimited(FewshotAPIError):
    """429: too many requests; raised once the retries are spent."""


class Unavailable(FewshotAPIError):
    """503: loading, overloaded or a feature not configured; raised once the retries are spent."""


class FewshotConnectionError(FewshotAPIError):
    """The service could not be reached (status 0); raised once the retries, if any were allowed, are spent."""


_BY_STATUS: dict[int, type[FewshotAPIError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def error_from_response(response: httpx.Response) -> FewshotAPIError:
    """The typed exception for an error answer (a body that is not the contract's still gives one)."""
    try:
        body = response.json()
        error = dict(body["error"])
    except (ValueError, KeyError, TypeError):
        error = {"code": "http_error", "message": response.text[:500] or response.reason_phrase}
    code = str(error.pop("code", "http_error"))
    message = str(error.pop("message", ""))
    field = error.pop("field", None)
    kind = _BY_STATUS.get(response.status_code, FewshotAPIError)
    return kind(
        response.status_code,
        code,
        message,
        field=field if isinstance(field, str) else None,
        request_id=response.headers.get("x-request-id"),
        details=error,
    )
