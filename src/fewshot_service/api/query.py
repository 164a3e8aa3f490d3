"""One value per single-valued query parameter: `?status=a&status=b` suits a list, `?q=a&q=b` is refused.

Starlette keeps the last of repeated values, a proxy or a log reader may take the first: the same request
then means two things (HTTP parameter pollution). A parameter the schema declares single-valued and the
request repeats gets 422 naming it. Which parameters are single-valued is read from the app's own OpenAPI
schema, computed once per route.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..errors import InvalidInput


def _takes_many(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        return True
    return any(_takes_many(member) for member in schema.get("anyOf", []) + schema.get("oneOf", []))


def _single_valued(request: Request) -> frozenset[str]:
    route = request.scope.get("route")
    path, method = getattr(route, "path", None), request.method.lower()
    cache: dict[tuple[str | None, str], frozenset[str]] = request.app.state.single_valued_query
    if (path, method) not in cache:
        operation = request.app.openapi().get("paths", {}).get(path, {}).get(method, {})
        cache[(path, method)] = frozenset(
            parameter["name"]
            for parameter in operation.get("parameters", [])
            if parameter.get("in") == "query" and not _takes_many(parameter.get("schema", {}))
        )
    return cache[(path, method)]


async def single_valued_query(request: Request) -> None:
    """An app-wide dependency: 422 when a single-valued query parameter is given more than once."""
    if not request.query_params:
        return
    for name in _single_valued(request):
        given = request.query_params.getlist(name)
        if len(given) > 1:
            raise InvalidInput(f"query parameter {name!r} takes one value, {len(given)} were given", field=name)
