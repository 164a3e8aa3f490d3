"""Curation of examples: add (one or a batch), list, get, edit, delete, history, labels, export, import."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...auth import annotating
from ...bank.importer import parse_line
from ...curation.types import (
    MAX_BATCH,
    CreateResult,
    EditOnDuplicate,
    ExampleBatch,
    ExamplePage,
    ExamplePageQuery,
    ExampleQuery,
    ExampleUpdate,
    HistoryEntry,
    LabelResult,
    OnDuplicate,
)
from ...errors import Forbidden, ImportFileError, InvalidInput, PayloadTooLarge
from ...models import Example, ExampleCreate, ExampleImport, ExampleUsage, Label, LabelCreate, LabelSubmission
from ...selection.utility import public_utility
from ..deps import Actor, CuratorDep
from ..middleware.security import CurrentPrincipal, require
from ..responses import PROTECTED, WITH_BODY, errors, inline_schema

router = APIRouter(tags=["curation"], dependencies=[require("curator")], responses=PROTECTED)
IMPORT_BATCH = 200
# JSON Lines: one ExampleImport object a line, written out (no $ref) because the model is not otherwise in the schema.
IMPORT_BODY = {
    "type": "array",
    "items": inline_schema(ExampleImport),
    "description": "JSON Lines: one Example a line, as exported (id, status, quality, timestamps, labels optional; "
    "outside mode=restore the server sets ids, dates, status and quality and refuses labels).",
}
# One exported example, labels included, is far below this; a longer "line" is refused, not held in memory.
MAX_LINE_BYTES = 16 * 1_048_576
ImportMode = Literal["curate", "restore"]
ExampleId = Annotated[str, Path(max_length=64, description="The example's id.")]


@router.post(
    "/v1/examples",
    operation_id="create_example",
    status_code=status.HTTP_201_CREATED,
    response_model=CreateResult,
    responses={**WITH_BODY, **errors(409)},
)
def add_examples(
    body: ExampleCreate | ExampleBatch,
    curator: CuratorDep,
    actor: Actor,
    on_duplicate: Annotated[OnDuplicate, Query(description="reject (409, nothing stored), skip, or keep")] = "reject",
) -> CreateResult:
    """Add one example or a batch (all or nothing unless on_duplicate=skip); selectable at once if approved."""
    records = body.examples if isinstance(body, ExampleBatch) else [body]
    if len(records) > MAX_BATCH:
        raise PayloadTooLarge(
            f"a batch holds at most {MAX_BATCH} examples, this one has {len(records)}", field="examples"
        )
    return curator.add(records, on_duplicate, actor)


@router.get("/v1/examples", operation_id="list_examples", response_model=ExamplePage)
def list_examples(query: Annotated[ExamplePageQuery, Query()], curator: CuratorDep) -> ExamplePage:
    """Examples matching the filters, a page at a time (pass next_cursor back as cursor)."""
    page, next_cursor = curator.list_examples(query, query.cursor, query.limit)
    return ExamplePage(examples=page, next_cursor=next_cursor)


@router.get("/v1/examples/export", operation_id="export_examples", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})  # fmt: skip
def export_examples(query: Annotated[ExampleQuery, Query()], curator: CuratorDep) -> StreamingResponse:
    """The matching examples with their labels as JSONL; importing it reproduces them."""
    return StreamingResponse(curator.export_jsonl(query), media_type="application/x-ndjson")


@router.post(
    "/v1/examples/import",
    operation_id="import_examples",
    openapi_extra={"requestBody": {"content": {"application/x-ndjson": {"schema": IMPORT_BODY}}}},
    responses=errors(409),
)
async def import_examples(
    request: Request,
    curator: CuratorDep,
    actor: Actor,
    principal: CurrentPrincipal,
    mode: Annotated[
        ImportMode,
        Query(description="curate: the curator rules of POST /v1/examples; restore (admin): the export exactly"),
    ] = "curate",
) -> dict[str, Any]:
    """Upload JSONL (one Example per line); streamed, bad lines reported by number, the rest kept. An upload
    none of whose lines is an example is refused (422, the bad lines listed).

    mode=curate (the default) applies the rules of the API: ids, dates and label authorship are the
    server's; a new example is pending with no quality until labelled; a line for a stored example (by
    external_id, then id) changes only the fields it gives, and only at its `version` when it gives one;
    duplicates (exact and semantic) and lines with labels are refused. mode=restore (admin keys only)
    reproduces an export exactly: ids, labels, dates, status and quality."""
    if mode == "restore" and not principal.may("admin"):
        raise Forbidden(
            f"mode=restore needs the admin role; the key {principal.name!r} is {principal.role}", field="mode"
        )
    run = curator.restore if mode == "restore" else curator.import_curated
    report: dict[str, Any] = {"mode": mode, "imported": 0, "created": 0, "updated": 0, "unchanged": 0,
                              "errors": [], "notices": []}  # fmt: skip
    batch: list[tuple[int, ExampleImport]] = []
    number = readable = 0

    async def store() -> None:
        counts = await run_in_threadpool(run, [record for _, record in batch], actor)
        report["imported"] += len(counts.ids)
        for name in ("created", "updated", "unchanged"):
            report[name] += getattr(counts, name)
        report["errors"] += [{"line": batch[n][0], "message": why} for n, why in counts.failed]
        report["notices"] += [{"line": batch[n][0], "message": what} for n, what in counts.notes]

    async for line in _lines(request, MAX_LINE_BYTES):
        number += 1
        if line is None:
            report["errors"].append({"line": number, "message": f"longer than {MAX_LINE_BYTES} bytes"})
            continue
        if not line.strip():
            continue
        record = parse_line(line, restore=mode == "restore")
        if isinstance(record, str):
            report["errors"].append({"line": number, "message": record})
            continue
        batch.append((number, record))
        readable += 1
        if len(batch) >= IMPORT_BATCH:
            await store()
            batch = []
    if batch:
        await store()
    report["errors"].sort(key=lambda error: error["line"])
    report["notices"].sort(key=lambda notice: notice["line"])
    if report["errors"] and not readable:
        errors = [(e["line"], e["message"]) for e in report["errors"]]
        raise ImportFileError(f"no line of the upload is an example ({len(errors)} bad)", line_errors=errors)
    return report


async def _lines(request: Request, longest: int) -> AsyncIterator[bytes | None]:
    """The body's lines, and None in place of a line longer than `longest` bytes, which is never held whole."""
    pending = b""
    too_long = False
    async for chunk in request.stream():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield None if too_long or len(line) > longest else line
            too_long = False
        if len(pending) > longest:
            too_long, pending = True, b""  # drop what is held; the rest of the line is dropped as it comes
    if too_long:
        yield None
    elif pending:
        yield pending


def _version_from(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None  # RFC 9110: "*" matches any current representation
    found = re.fullmatch(r'\s*(?:W/)?"?(\d+)"?\s*', if_match)
    if not found:
        raise InvalidInput('If-Match must carry the example version, e.g. "3"', field="If-Match")
    return int(found.group(1))


@router.get("/v1/examples/{example_id}", operation_id="get_example", response_model=Example, responses=errors(404))
def get_example(example_id: ExampleId, curator: CuratorDep, response: Response) -> Example:
    example = curator.get(example_id)
    response.headers["ETag"] = f'"{example.version}"'
    utility = public_utility(curator.service.utilities.of(example.id, example.version))
    return example.model_copy(update={"utility": utility}) if utility is not None else example


@router.get(
    "/v1/examples/{example_id}/usage", operation_id="example_usage", response_model=ExampleUsage, responses=errors(404)
)
def example_usage(example_id: ExampleId, curator: CuratorDep) -> ExampleUsage:
    """How often selections served this example: in the last day, and among all kept selections."""
    return curator.usage(example_id)


@router.patch(
    "/v1/examples/{example_id}",
    operation_id="update_example",
    response_model=Example,
    responses={**WITH_BODY, **errors(404, 409)},
)
def edit_example(
    example_id: ExampleId,
    edit: ExampleUpdate,
    curator: CuratorDep,
    actor: Actor,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            max_length=100,
            description='The version edited, e.g. "3" (or send "version"); "*" for any version',
            # A header is never null on the wire: "type" keeps the schema's null member (from the default) out.
            json_schema_extra={"type": "string", "pattern": r'^\s*(?:\*|(?:W/)?"?\d+"?)\s*$'},
        ),
    ] = None,
    on_duplicate: Annotated[
        EditOnDuplicate,
        Query(description="reject (409) a new input that duplicates another example, as an add does; or keep"),
    ] = "reject",
) -> Example:
    """Change fields; 409 when the example changed since the version the edit is based on, or when a new
    input duplicates another example (exact or semantic, the rule of adding)."""
    example = curator.update(example_id, edit, _version_from(if_match), actor, on_duplicate)
    response.headers["ETag"] = f'"{example.version}"'
    return example


@router.delete(
    "/v1/examples/{example_id}",
    operation_id="delete_example",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409),
)
def delete_example(example_id: ExampleId, curator: CuratorDep, actor: Actor) -> Response:
    """Delete an example; it is never selected again from the moment this returns."""
    curator.delete(example_id, actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/examples/{example_id}/history",
    operation_id="example_history",
    response_model=list[HistoryEntry],
    responses=errors(404),
)
def example_history(example_id: ExampleId, curator: CuratorDep) -> list[HistoryEntry]:
    """Every change: who, when, what (old and new values)."""
    return curator.history(example_id)


@router.post(
    "/v1/examples/{example_id}/labels",
    operation_id="label_example",
    status_code=status.HTTP_201_CREATED,
    response_model=LabelResult,
    responses={**WITH_BODY, **errors(404, 409)},
)
def label_example(
    example_id: ExampleId, submitted: LabelSubmission, curator: CuratorDep, actor: Actor, principal: CurrentPrincipal
) -> LabelResult:
    """A curator's quality label; the example's status and quality follow from its labels (see README).
    With API keys on the annotator is the key's name: another name is 403 unless the key is admin (then
    recorded_by names the admin). An item leased to another annotator is 409 unless the key is admin, and so
    is a label whose `version` is not the example's current one (it was edited after the annotator saw it)."""
    who = annotating(principal, submitted.annotator)
    label = LabelCreate(**{**submitted.model_dump(exclude={"version"}), "annotator": who.annotator})
    return curator.label(
        example_id, label, actor if actor != "anonymous" else who.annotator, recorded_by=who.recorded_by,
        override_lease=who.admin, seen_version=submitted.version,
    )  # fmt: skip


@router.delete(
    "/v1/examples/{example_id}/labels/{label_id}",
    operation_id="withdraw_label",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409),
)
def withdraw_label(
    example_id: ExampleId,
    label_id: Annotated[str, Path(max_length=64, description="The label's id.")],
    curator: CuratorDep,
    actor: Actor,
    principal: CurrentPrincipal,
) -> Response:
    """Undo a label: it stays in the history, marked withdrawn, and the example's status and quality are
    recomputed without it. Only the label's annotator (or an admin) may; anyone else's label is 404."""
    owner = principal.name if principal.authenticated and principal.role != "admin" else None
    curator.withdraw_label(example_id, label_id, owner, actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/examples/{example_id}/labels", operation_id="list_labels", response_model=list[Label], responses=errors(404)
)
def example_labels(example_id: ExampleId, curator: CuratorDep) -> list[Label]:
    return curator.labels_of(example_id)
