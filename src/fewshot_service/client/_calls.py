"""Each API operation as a Call (method, path, body, and how to read the answer), shared by both clients."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from ..curation.types import (
    CreateResult,
    ExamplePage,
    HistoryEntry,
    LabelResult,
    Preference,
    PreferenceLabel,
    ReviewItem,
)
from ..feedback.types import FeedbackReceipt
from ..models import Example, Label, PartialSelectResponse, SelectRequest, SelectResponse

T = TypeVar("T")
Body = BaseModel | Mapping[str, Any]
ImportSource = bytes | str | os.PathLike[str] | Iterable[Body]
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def as_json(value: Body) -> dict[str, Any]:
    """A model as its JSON object (only the fields set, so an edit's nulls mean "clear"), a mapping as given."""
    if isinstance(value, BaseModel):
        dumped: dict[str, Any] = value.model_dump(mode="json", exclude_unset=True)
        return dumped
    return dict(value)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}  # one per type: building one costs more than a select call


def _model(kind: type[T]) -> Callable[[httpx.Response], T]:
    adapter: TypeAdapter[T] = _ADAPTERS.get(kind) or _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    return lambda response: adapter.validate_json(response.content)


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def _nothing(_: httpx.Response) -> None:
    return None


def _params(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in filters.items() if value is not None}


def select(
    request: SelectRequest | str, fields: Sequence[str] | None, options: Mapping[str, Any]
) -> Call[SelectResponse | PartialSelectResponse]:
    body = {"prompt": request, **options} if isinstance(request, str) else {**as_json(request), **options}
    if fields is not None:  # a lone string is sent as given: the service names the mistake, not its letters
        body["fields"] = fields if isinstance(fields, str) else list(fields)
    # With fields the examples are cut to them: a PartialSelectResponse.
    kind: type[SelectResponse | PartialSelectResponse] = (
        PartialSelectResponse if body.get("fields") is not None else SelectResponse
    )
    return Call("POST", "/v1/select", _model(kind), json=body)


def _first_stored(response: httpx.Response) -> Example:
    return CreateResult.model_validate_json(response.content).examples[0]


def add(example: Body, on_duplicate: Literal["reject", "keep"]) -> Call[Example]:
    params = {"on_duplicate": on_duplicate}
    return Call("POST", "/v1/examples", _first_stored, params=params, json=as_json(example))


def add_many(examples: Iterable[Body], on_duplicate: Literal["reject", "skip", "keep"]) -> Call[CreateResult]:
    body = {"examples": [as_json(example) for example in examples]}
    return Call("POST", "/v1/examples", _model(CreateResult), params={"on_duplicate": on_duplicate}, json=body)


def get(example_id: str) -> Call[Example]:
    return Call("GET", f"/v1/examples/{example_id}", _model(Example))


def edit(example_id: str, changes: Body, version: int | None) -> Call[Example]:
    headers = {"If-Match": f'"{version}"'} if version is not None else {}
    return Call("PATCH", f"/v1/examples/{example_id}", _model(Example), json=as_json(changes), headers=headers)


def delete(example_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/examples/{example_id}", _nothing)


def list_page(filters: Mapping[str, Any], cursor: str | None, limit: int) -> Call[ExamplePage]:
    params = _params({**filters, "cursor": cursor, "limit": limit})
    return Call("GET", "/v1/examples", _model(ExamplePage), params=params)


def history(example_id: str) -> Call[list[HistoryEntry]]:
    return Call("GET", f"/v1/examples/{example_id}/history", _model(list[HistoryEntry]))


def label(example_id: str, value: Body) -> Call[LabelResult]:
    return Call("POST", f"/v1/examples/{example_id}/labels", _model(LabelResult), json=as_json(value))


def labels(example_id: str) -> Call[list[Label]]:
    return Call("GET", f"/v1/examples/{example_id}/labels", _model(list[Label]))


def _review_item(response: httpx.Response) -> ReviewItem | None:
    return None if response.status_code == 204 else ReviewItem.model_validate_json(response.content)


def review_next(annotator: str | None, blind: bool, skip: list[str]) -> Call[ReviewItem | None]:
    params = _params({"annotator": annotator, "blind": blind, "skip": skip or None})
    return Call("GET", "/v1/review/next", _review_item, params=params)


def release(example_id: str, annotator: str | None) -> Call[None]:
    params = _params({"annotator": annotator})
    return Call("POST", f"/v1/review/{example_id}/release", _nothing, params=params)


def withdraw_label(example_id: str, label_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/examples/{example_id}/labels/{label_id}", _nothing)


def feedback(selection_id: str, outcome: str | float, note: str | None) -> Call[FeedbackReceipt]:
    body = {"selection_id": selection_id, "outcome": outcome, **({"note": note} if note is not None else {})}
    return Call("POST", "/v1/feedback", _model(FeedbackReceipt), json=body)


def add_preference(pair: Body) -> Call[Preference]:
    return Call("POST", "/v1/preferences", _model(Preference), json=as_json(pair))


def label_preference(preference_id: str, value: Body) -> Call[PreferenceLabel]:
    return Call("POST", f"/v1/preferences/{preference_id}/labels", _model(PreferenceLabel), json=as_json(value))


def stats() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/stats", _json)


def agreement() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/stats/agreement", _json)


def ready() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", _json)


def export(filters: Mapping[str, Any]) -> Call[None]:
    return Call("GET", "/v1/examples/export", _nothing, params=_params(filters))


def import_call() -> Call[dict[str, Any]]:
    return Call("POST", "/v1/examples/import", _json, headers={"Content-Type": "application/x-ndjson"})


class ImportBody:
    """An upload's JSONL as chunks; `replayable` tells whether it can be sent again after a 429/503."""

    def __init__(self, source: ImportSource) -> None:
        self.source = source
        self.replayable = isinstance(source, bytes | str | os.PathLike | list | tuple)

    def chunks(self) -> Iterator[bytes]:
        source = self.source
        if isinstance(source, bytes):
            yield source
        elif isinstance(source, str | os.PathLike):
            with Path(source).open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk
        else:
            for record in source:
                yield json.dumps(as_json(record), ensure_ascii=False).encode() + b"\n"
