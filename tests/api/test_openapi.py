"""The published schema: explicit short operation ids, described tags, examples that validate, error codes
as an enum, the NDJSON export's record type."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from fewshot_service import errors
from fewshot_service.api import create_app
from fewshot_service.api.openapi import published_routes
from fewshot_service.curation.types import CreateResult, ExampleUpdate, LabelResult
from fewshot_service.models import Example, ExampleCreate, LabelCreate, SelectRequest, SelectResponse
from fewshot_service.settings import Settings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    root = tmp_path_factory.mktemp("openapi")
    return create_app(Settings(data_dir=root, index_dir=root), start="no")


@pytest.fixture(scope="module")
def schema(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for path in schema["paths"].values() for op in path.values()}


def test_every_published_route_names_its_operation_explicitly(app: FastAPI, schema: dict[str, Any]) -> None:
    unnamed = [route.path for route in published_routes(app.router.routes) if route.operation_id is None]
    assert unnamed == [], "give these route decorators operation_id="
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z_]{1,30}", name) for name in ids), ids
    core = {"select", "create_example", "list_examples", "get_example", "update_example", "delete_example"}
    assert core | {"label_example", "export_examples", "import_examples", "review_next"} <= set(ids)


def test_a_route_without_an_operation_id_stops_the_app(app: FastAPI) -> None:
    extra = APIRouter()

    @extra.get("/v1/unnamed")
    def unnamed() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="/v1/unnamed has no operation_id"):
        # The app's own id function refuses it, wherever FastAPI happens to call it.
        probe = FastAPI(generate_unique_id_function=app.router.generate_unique_id_function)  # type: ignore[arg-type]
        probe.include_router(extra)
        probe.openapi()
    hidden = APIRouter()

    @hidden.get("/ui-like", include_in_schema=False)
    def not_published() -> dict[str, str]:
        return {}

    probe = FastAPI(generate_unique_id_function=app.router.generate_unique_id_function)  # type: ignore[arg-type]
    probe.include_router(hidden)
    assert "/ui-like" not in probe.openapi()["paths"]


def test_create_app_refuses_a_router_with_an_unnamed_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fewshot_service.api.routes import select

    router = APIRouter()
    router.add_api_route("/v1/select-again", lambda: {}, methods=["GET"])
    router.include_router(select.router)
    monkeypatch.setattr(select, "router", router)
    with pytest.raises(RuntimeError, match="/v1/select-again has no operation_id"):
        create_app(Settings(data_dir=tmp_path, index_dir=tmp_path), start="no")


def test_every_tag_is_described(schema: dict[str, Any]) -> None:
    described = {tag["name"] for tag in schema["tags"] if tag.get("description")}
    used = {tag for op in operations(schema).values() for tag in op.get("tags", [])}
    assert used <= described


def test_examples_on_select_and_curation_are_valid_requests_and_answers(schema: dict[str, Any]) -> None:
    ops = operations(schema)
    models: dict[str, tuple[Any, Any]] = {
        "select": (SelectRequest, SelectResponse),
        "update_example": (ExampleUpdate, Example),
        "label_example": (LabelCreate, LabelResult),
        "get_example": (None, Example),
    }
    for name, (request, answer) in models.items():
        body = ops[name].get("requestBody", {}).get("content", {}).get("application/json", {})
        for example in body.get("examples", {}).values() if request else ():
            request.model_validate(example["value"])
        success = next(status for status in ops[name]["responses"] if status.startswith("2"))
        shown = ops[name]["responses"][success]["content"]["application/json"]["examples"]
        assert shown and all(answer.model_validate(e["value"]) for e in shown.values())
    created = ops["create_example"]
    for example in created["requestBody"]["content"]["application/json"]["examples"].values():
        value = example["value"]
        for one in value.get("examples", [value]):
            ExampleCreate.model_validate(one)
    assert CreateResult.model_validate(
        next(iter(created["responses"]["201"]["content"]["application/json"]["examples"].values()))["value"]
    )


def test_the_error_code_is_an_enum_holding_every_code_answered(app: FastAPI, schema: dict[str, Any]) -> None:
    enum = schema["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
    pending: list[type[errors.FewshotError]] = [errors.FewshotError]
    while pending:
        kind = pending.pop()
        assert kind.code in enum, kind
        pending.extend(kind.__subclasses__())
    with TestClient(app) as client:
        answers = [
            client.delete("/v1/select"),
            client.post("/v1/select", content=b"{", headers={"Content-Type": "application/json"}),
            client.post("/v1/select", json={"prompt": "x", "k": 0}),
            client.get("/v1/nowhere"),
        ]
    assert {answer.json()["error"]["code"] for answer in answers} <= set(enum)
    source = Path(errors.__file__).parent / "api"
    literal = {m for f in source.rglob("*.py") for m in re.findall(r'"code": "([a-z_]+)"', f.read_text())}
    assert literal <= set(enum), "add a code the HTTP layer answers itself to errors.HTTP_LAYER_CODES"


def test_the_export_declares_its_lines_as_example_records(schema: dict[str, Any]) -> None:
    content = operations(schema)["export_examples"]["responses"]["200"]["content"]["application/x-ndjson"]
    assert content["schema"]["items"] == {"$ref": "#/components/schemas/ExampleRecord"}
    record = schema["components"]["schemas"]["ExampleRecord"]
    assert {"id", "input", "labels"} <= set(record["properties"])


def test_every_bound_is_written_as_json_schema_states_it(schema: dict[str, Any]) -> None:
    """Bounds appear as minimum/maximum (what clients and the fuzzing test read), never as pydantic's own
    ge/le/gt/lt, which a validator on the inner type of an optional field once leaked into the schema."""
    leaked: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number") and {"ge", "le", "gt", "lt"} & set(node):
                leaked.append(where)
            for key, child in node.items():
                walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for n, child in enumerate(node):
                walk(child, f"{where}/{n}")

    walk(schema["components"]["schemas"], "#/components/schemas")
    bounded = schema["components"]["schemas"]["SelectFilters"]["properties"]["difficulty_min"]["anyOf"][0]
    assert (bounded["minimum"], bounded["maximum"]) == (1, 5)
    assert leaked == []
