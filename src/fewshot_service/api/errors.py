"""Every error becomes the contract's body {"error": {"code", "message", "field"}}, mapped in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from ..errors import BankUnavailable, FewshotError

log = logging.getLogger(__name__)


def error_body(
    code: str, message: str, field: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The one shape every error answer has, handlers and middleware alike (docs/api.md, "Errors")."""
    return {"error": {"code": code, "message": message, "field": field, **(details or {})}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field, details), status_code=status, headers=headers)


def _is_member_name(part: Any) -> bool:
    # pydantic names the union member ("ExampleBatch") or a validator wrapper in an error's location.
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def _closest_member(problems: list[Any]) -> list[Any]:
    """For a body that may be one of several models, the errors of the model it most resembles."""
    members: dict[str, list[Any]] = {}
    for problem in problems:
        location = problem.get("loc", ())
        if len(location) > 1 and location[0] == "body" and _is_member_name(location[1]):
            members.setdefault(location[1], []).append(problem)
    if len(members) < 2:
        return problems
    shape_errors = {"missing", "extra_forbidden", "model_attributes_type", "model_type"}
    return min(members.values(), key=lambda errs: (sum(e.get("type") in shape_errors for e in errs), len(errs)))


def _field_of(location: tuple[Any, ...]) -> str | None:
    """("body", "filters", "difficulty_max") -> "filters.difficulty_max"; the body as a whole -> "body"."""
    parts = [p for p in location if not _is_member_name(p)]
    if parts and parts[0] in ("body", "query", "path", "header"):
        return ".".join(str(p) for p in parts[1:]) or str(parts[0])
    return ".".join(str(p) for p in parts) or None


# pydantic's types for "the body is there but is not an object" (an array, a string, a number).
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, parameters (charset) aside."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _not_sent_as_json(request: Request) -> JSONResponse:
    """`curl -d` sends form encoding: FastAPI then does not read the body as JSON (which keeps a web page from
    posting to the API with a plain form), and the body's problem would read as "not an object"."""
    sent = request.headers.get("content-type")
    told = f"this request's Content-Type is {sent!r}" if sent else "this request has no Content-Type"
    message = f"the body must be JSON sent with Content-Type: application/json ({told})"
    return error_response(415, "unsupported_media_type", message, "content-type")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _closest_member(list(exc.errors()))
    first = problems[0] if problems else {"loc": (), "msg": "invalid request", "type": ""}
    field = _field_of(tuple(first.get("loc", ())))
    body_problem = field == "body" and first.get("type") != "missing"
    if body_problem and not is_json_media_type(request.headers.get("content-type")):
        return _not_sent_as_json(request)
    if first.get("type") == "json_invalid":
        context: Any = first.get("ctx") or {}
        reason = context.get("error", "")
        return error_response(400, "invalid_json", f"the body is not valid JSON: {reason}".rstrip(": "), "body")
    if first.get("type") == "missing" and field == "body":
        return error_response(422, "invalid_input", "a JSON body is required", "body")
    if body_problem and first.get("type") in _NOT_AN_OBJECT:
        return error_response(422, "invalid_input", "the body must be a JSON object", "body")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif field:
        message = f"{field}: {message}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return error_response(422, "invalid_input", message, field)


async def _fewshot_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FewshotError)
    metrics = getattr(request.app.state, "metrics", None)
    if isinstance(exc, BankUnavailable) and request.method not in ("GET", "HEAD") and metrics is not None:
        metrics.refused_writes.inc()
    details = exc.details()
    if exc.status_code == 500:  # 503 "still loading" is expected, not worth a traceback
        request_id = getattr(request.state, "request_id", None)  # set by the Observe middleware
        log.error("%s: %s", exc.code, exc.message, exc_info=exc, extra={"request_id": request_id})
        details = {**details, "request_id": request_id}
    return error_response(exc.status_code, exc.code, exc.message, exc.field, exc.headers() or None, details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return _method_not_allowed(request)
    if exc.status_code == 404 and (without_slash := _route_without_trailing_slash(request)) is not None:
        return error_response(404, "not_found", f"no route at {request.url.path}; the route is {without_slash}")
    # FastAPI answers 400 for a body its JSON parser gave up on for a reason other than a syntax error
    # (nesting deeper than the parser's recursion allows): the body's fault, like invalid JSON.
    codes = {400: "invalid_json", 404: "not_found", 413: "payload_too_large"}
    field = "body" if exc.status_code in (400, 413) else None
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), field)


def _method_not_allowed(request: Request) -> JSONResponse:
    """405 with the Allow header RFC 9110 requires, listing every method the path answers: Starlette names
    only the first route that matched the path (GET /v1/examples, not also its POST), and FastAPI's handler
    dropped even that."""
    allowed: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):  # included routers' routes, one by one
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            allowed |= route.methods
    if "GET" in allowed:
        allowed.add("HEAD")  # middleware/protocol.py answers HEAD wherever GET is answered
    listed = ", ".join(sorted(allowed))
    message = f"{request.method} is not allowed on {request.url.path}; it answers {listed}"
    return error_response(405, "method_not_allowed", message, headers={"Allow": listed})


def _route_without_trailing_slash(request: Request) -> str | None:
    """The path without its trailing slash when a route answers that, else None. The router does not redirect
    ("/v1/select/" to "/v1/select"): its 307 had an empty body, which clients showed as a bare status, and a
    client that does not follow redirects for a POST learnt nothing from it."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/") or "/"}
    for route in iter_route_contexts(request.app.router.routes):
        if route.matches(scope)[0] != Match.NONE:
            return str(scope["path"])
    return None


def unexpected_error(exc: BaseException, request_id: str) -> JSONResponse:
    """Log an exception no handler knows, once and with the request's id, and the 500 that answers it.

    Called by the Observe middleware rather than installed as an Exception handler: Starlette runs such a
    handler outside every middleware (so the answer had no X-Request-ID and the log line no request id),
    then re-raises, and the server logs the same traceback a second time."""
    log.error("unexpected error", exc_info=exc, extra={"request_id": request_id})
    message = "an unexpected error occurred; it has been logged with this request_id"
    return error_response(500, "internal_error", message, details={"request_id": request_id})


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    """The client closed the connection before its body was complete (a streamed import cut short, an upload
    whose file went missing). Nobody reads this answer; it keeps the access log and the metrics from counting
    the client's departure as the server's failure (it was a 500 with a traceback)."""
    message = "the connection was closed before the whole request body arrived"
    return error_response(400, "incomplete_body", message, "body")


def install_error_handlers(app: FastAPI) -> None:
    app.router.redirect_slashes = False  # see _route_without_trailing_slash
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(FewshotError, _fewshot_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
