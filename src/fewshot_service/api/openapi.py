"""The published OpenAPI schema: explicit operation ids, tag descriptions, examples, error codes, NDJSON records.

Clients are generated from this schema, so its names are part of the contract: every route in it names its
operation (`operation_id=` on the decorator) and a route that does not stops the app from being built.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from ..curation.types import ExampleRecord
from ..errors import error_codes

TAGS: list[dict[str, str]] = [
    {"name": "select", "description": "Few-shot examples for a prompt: relevant, diverse, filtered (reader role)."},
    {"name": "curation", "description": "Add, edit, label, list, export and import the examples (curator role)."},
    {
        "name": "feedback",
        "description": "Report how a selection's answer turned out; outcomes become utility (reader role).",
    },
    {"name": "review", "description": "The review queue and pairwise preference labels (curator role)."},
    {"name": "monitoring", "description": "The bank's shape, label agreement and charts (curator role)."},
    {"name": "quality model", "description": "Train and apply the learnt quality model (admin role)."},
    {"name": "operations", "description": "Probes, index rebuilds, API keys, LLM expansion and metrics."},
]

_EXAMPLE = {
    "id": "3f2c9a1e0b7d4c55",
    "external_id": "gsm8k-train-0042",
    "input": "A train travels 120 km in 2 hours. How far does it go in 5 hours at the same speed?",
    "output": "300 km",
    "steps": ["Speed = 120 / 2 = 60 km/h.", "Distance = 60 × 5 = 300 km."],
    "topic": "rates",
    "difficulty": 2,
    "tags": ["speed"],
    "source": "curated",
    "metadata": {},
    "status": "approved",
    "quality": 4.5,
    "created_at": "2026-01-05T10:00:00Z",
    "updated_at": "2026-01-05T10:00:00Z",
    "version": 1,
}
_NEW = {key: _EXAMPLE[key] for key in ("external_id", "input", "output", "steps", "topic", "difficulty", "tags")}
_SELECT = {
    "prompt": "A cyclist rides 45 km in 3 hours. How long does 75 km take at that speed?",
    "k": 4,
    "strategy": "mmr",
    "diversity": 0.3,
    "filters": {"topics": ["rates"], "difficulty_max": 3},
}
_SELECTED = {
    "examples": [{**_EXAMPLE, "score": 0.83}],
    "strategy": "mmr",
    "diversity": 0.3,
    "index_version": "20260105T100000-ab12cd34",
    "took_ms": 7.9,
}
_MESSAGES = {
    "prompt": _SELECT["prompt"],
    "k": 2,
    "format": "messages",
}
_LABEL = {"annotator": "cara", "verdict": "approve", "score": 5, "issues": [], "note": "Clear steps."}

# operation id -> (request examples, examples of the first 2xx answer), as OpenAPI named examples.
_EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "select": (
        {"filtered": {"summary": "MMR within a topic", "value": _SELECT},
         "messages": {"summary": "Chat messages to put between system and user", "value": _MESSAGES}},
        {"examples": {"summary": "One example chosen", "value": _SELECTED}},
    ),
    "create_example": (
        {"one": {"summary": "One example", "value": _NEW},
         "batch": {"summary": "A batch (at most 500)", "value": {"examples": [_NEW]}}},
        {"created": {"value": {"examples": [{**_EXAMPLE, "status": "pending"}], "duplicates": [], "skipped": []}}},
    ),
    "list_examples": ({}, {"page": {"value": {"examples": [_EXAMPLE], "next_cursor": "3f2c9a1e0b7d4c55"}}}),
    "get_example": ({}, {"example": {"value": _EXAMPLE}}),
    "update_example": (
        {"edit": {"summary": "Fix the answer of version 1", "value": {"version": 1, "output": "300 km."}}},
        {"edited": {"value": {**_EXAMPLE, "output": "300 km.", "version": 2}}},
    ),
    "label_example": (
        {"approve": {"value": _LABEL}},
        {"labelled": {"value": {"label": {**_LABEL, "id": "9a8b7c6d5e4f3a2b", "example_id": _EXAMPLE["id"],
                                          "corrected_output": None, "step_ratings": None, "first_wrong_step": None,
                                          "created_at": "2026-01-05T10:05:00Z"},
                                "example": _EXAMPLE}}},
    ),
}  # fmt: skip


def explicit_operation_id(route: APIRoute) -> str:
    """FastAPI's generate_unique_id_function: refuses a published route without operation_id=."""
    if not route.include_in_schema:
        return route.name  # never published, so its id is nobody's contract
    raise RuntimeError(
        f"{'/'.join(sorted(route.methods or ()))} {route.path} has no operation_id: give the route decorator a short "
        "stable operation_id=, as every published route has (api/openapi.py)"
    )


def published_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The routes of the schema, looking inside included routers (FastAPI may keep them whole)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from published_routes(inner.routes)
        elif isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def require_operation_ids(app: FastAPI) -> None:
    """Fail the app's construction, not its first schema request, when a published route has no operation_id."""
    for route in published_routes(app.router.routes):
        if route.operation_id is None:
            explicit_operation_id(route)


def _add_examples(schema: dict[str, Any]) -> None:
    for operations in schema["paths"].values():
        for operation in operations.values():
            request, answer = _EXAMPLES.get(operation.get("operationId"), ({}, {}))
            if request:
                operation["requestBody"]["content"]["application/json"]["examples"] = request
            if answer:
                success = next(status for status in operation["responses"] if status.startswith("2"))
                operation["responses"][success]["content"]["application/json"]["examples"] = answer


def _add_export_records(schema: dict[str, Any]) -> None:
    """The export's lines are ExampleRecord objects: named in the components, so generated clients type them."""
    record = ExampleRecord.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in record.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("ExampleRecord", record)
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("operationId") == "export_examples":
                operation["responses"]["200"]["content"]["application/x-ndjson"] = {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ExampleRecord"},
                        "description": "JSON Lines: one ExampleRecord a line, streamed.",
                    }
                }


def _enumerate_error_codes(schema: dict[str, Any]) -> None:
    detail = schema.get("components", {}).get("schemas", {}).get("ErrorDetail")
    if detail is not None:
        detail["properties"]["code"]["enum"] = error_codes()


# Route table -> its polished schema. Building one takes 0.6 s on a slow 2-core machine and is needed by the
# first request with a query (query.py reads it): apps built alike in one process (a test suite builds hundreds)
# publish the same schema, since no route's declaration depends on the settings.
_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _route_table(app: FastAPI) -> tuple[Any, ...]:
    # Only what the schema shows: the docs' own routes are closures made anew for each app.
    routes = tuple(
        (context.path, tuple(sorted(context.methods or ())), context.endpoint)
        for context in iter_route_contexts(app.router.routes)
        if isinstance(context.route, APIRoute) and context.route.include_in_schema
    )
    return (app.title, app.version, app.description, app.openapi_version, routes)


def install_openapi(app: FastAPI) -> None:
    """Replace app.openapi with the polished schema (built on first use: it takes a while)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            table = _route_table(app)
            if table not in _SCHEMAS:
                schema = generate()
                _add_examples(schema)
                _add_export_records(schema)
                _enumerate_error_codes(schema)
                _SCHEMAS[table] = copy.deepcopy(schema)
            app.openapi_schema = copy.deepcopy(_SCHEMAS[table])  # the app's own: a caller may change it
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    require_operation_ids(app)
