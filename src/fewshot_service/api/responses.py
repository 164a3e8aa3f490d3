"""The error answers each route declares in the OpenAPI schema, all in the contract's error body.

Declared so clients (and the schema-driven fuzzing test) know every status a route may answer: the
security ones on every protected route, 400/413/415 where a body is read, 404/409 where the route says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    # Some errors add members (e.g. "duplicates" on a 409), hence extra="allow".
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Machine-readable reason, e.g. invalid_input, unauthorized, rate_limited.")
    message: str
    field: str | None = Field(None, description="The request field at fault, when there is one.")
    request_id: str | None = Field(
        None, description="On a 500 only: the request's id (as in X-Request-ID), which its log entry carries."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
_WHY: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The body is not valid JSON", {}),
    401: (
        "No API key, or one the service does not know (or revoked)",
        {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    403: ("The key's role does not allow this operation", {}),
    404: ("No such resource", {}),
    409: ("Conflicts with the current state (see the error code)", {}),
    413: ("The body (or a batch) is too large", {}),
    415: ("The body was not sent as JSON (Content-Type: application/json)", {}),
    422: ("Invalid input; the error names the field", {}),
    429: ("Too many requests from this key (or address)", _RETRY_AFTER),
    502: ("The LLM endpoint failed", {}),
    503: ("Loading, overloaded (too many requests in flight) or a feature not configured", _RETRY_AFTER),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses."""
    return {
        status: {"model": ErrorBody, "description": _WHY[status][0], "headers": _WHY[status][1]} for status in statuses
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its $defs written in place, for use where no component can be named."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# Every route behind a key: no/unknown key, low role, rate limit, bad parameters, oversized body, overload.
PROTECTED = errors(401, 403, 413, 422, 429, 503)
WITH_BODY = errors(400, 415)
