"""Each API operation as a Call (method, path, body, and how to read the answer), shared by both clients."""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

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
from ..models import ROUTE_WORDS, Example, Label, PartialSelectResponse, SelectRequest, SelectResponse
from .errors import refused

T = TypeVar("T")
Body = BaseModel | Mapping[str, Any]
ImportSource = bytes | str | os.PathLike[str] | Iterable[Body]
_CHUNK = 1 << 16
ON_DUPLICATE = ("reject", "skip", "keep")
IMPORT_MODES = ("curate", "restore")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every call's body and query are checked here, once for both clients: what httpx would fail on
        # midway (NaN, a lone surrogate) is the same 422 the service gives, raised before sending.
        check_json(self.json, "")
        check_json(self.params, "")


def check_json(value: Any, where: str) -> None:
    """Refuse what JSON (without NaN) in UTF-8 cannot carry, naming the field as the service's 422s do."""
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise refused(where, f"must be a finite number, not {value}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                _check_text(key, where or "body")
            elif not isinstance(key, int | float) and key is not None:
                raise refused(where or "body", f"keys must be strings, not {type(key).__name__}")
            check_json(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            check_json(item, f"{where}.{position}")
    elif value is not None and not isinstance(value, int):  # bool is an int
        raise refused(where, f"must be a string, number, boolean, null, list or object, not {type(value).__name__}")


def _check_text(text: str, where: str) -> None:
    try:
        text.encode()  # C speed; the loop-free way to find a lone surrogate
    except UnicodeEncodeError as exc:
        char = ascii(text[exc.start])[1:-1]
        raise refused(
            where, f"holds a lone surrogate ({char} at character {exc.start}), which UTF-8 cannot carry"
        ) from None


def as_json(value: Body, where: str) -> dict[str, Any]:
    """A model as its JSON object (only the fields set, so an edit's nulls mean "clear"), a mapping as given."""
    if isinstance(value, BaseModel):
        dumped: dict[str, Any] = value.model_dump(mode="json", exclude_unset=True)
        return dumped
    if not isinstance(value, Mapping):
        raise refused(where, f"must be an object (a dict or a model), not {type(value).__name__}")
    return dict(value)


def segment(where: str, value: Any) -> str:
    """An id as one URL path segment, percent-encoded whole: "a?b=c" or ".." stays an id, never a query or a
    step up. Ids are letters, digits, - and _; anything else is sent (encoded) and answered 404, except what
    could still reach another route: "/" (the server decodes %2F before routing, so "x/history" or
    "x/labels/y" would read or delete something else) and, for examples, the fixed routes export and import."""
    if not isinstance(value, str):
        raise refused(where, f"must be a string, not {type(value).__name__}")
    if not value:
        raise refused(where, "must not be empty")
    if "/" in value:
        raise refused(where, f"holds '/', which no id has ({value!r})")
    if where == "example_id" and value in ROUTE_WORDS:
        raise refused(where, f"{value!r} names the route /v1/examples/{value}, never an example")
    _check_text(value, where)
    encoded = quote(value, safe="")
    # "." and ".." are unreserved, so quote keeps them, and URL parsing would then remove them as dot segments.
    return encoded.replace(".", "%2E") if not encoded.strip(".") else encoded


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise refused(where, f"must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


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
    if not isinstance(request, str | BaseModel | Mapping):
        raise refused("prompt", f"must be a string, not {type(request).__name__}")
    body = {"prompt": request, **options} if isinstance(request, str) else {**as_json(request, "prompt"), **options}
    if fields is not None:  # a lone string is sent as given: the service names the mistake, not its letters
        body["fields"] = (
            fields if isinstance(fields, str | Mapping) or not isinstance(fields, Iterable) else list(fields)
        )
    # With fields the examples are cut to them: a PartialSelectResponse.
    kind: type[SelectResponse | PartialSelectResponse] = (
        PartialSelectResponse if body.get("fields") is not None else SelectResponse
    )
    return Call("POST", "/v1/select", _model(kind), json=body)


def _stored_one(response: httpx.Response) -> Example | None:
    # One example sent: stored, or (on_duplicate="skip") skipped as a duplicate, when `examples` is empty.
    stored = CreateResult.model_validate_json(response.content).examples
    return stored[0] if stored else None


def add(example: Body, on_duplicate: Literal["reject", "skip", "keep"]) -> Call[Example | None]:
    body = as_json(example, "example")
    if "examples" in body:  # the endpoint takes a batch too, but add() answers with one example
        raise refused("examples", "add() stores one example; add_many() takes a batch and returns all it stored")
    params = {"on_duplicate": _choice("on_duplicate", on_duplicate, ON_DUPLICATE)}
    return Call("POST", "/v1/examples", _stored_one, params=params, json=body)


def add_many(examples: Iterable[Body], on_duplicate: Literal["reject", "skip", "keep"]) -> Call[CreateResult]:
    if isinstance(examples, str | bytes | Mapping | BaseModel) or not isinstance(examples, Iterable):
        raise refused("examples", f"must be a list of examples (add() takes one), not {type(examples).__name__}")
    body = {"examples": [as_json(example, f"examples.{n}") for n, example in enumerate(examples)]}
    params = {"on_duplicate": _choice("on_duplicate", on_duplicate, ON_DUPLICATE)}
    return Call("POST", "/v1/examples", _model(CreateResult), params=params, json=body)


def get(example_id: str) -> Call[Example]:
    return Call("GET", f"/v1/examples/{segment('example_id', example_id)}", _model(Example))


def edit(
    example_id: str, changes: Body, version: int | None, on_duplicate: Literal["reject", "keep"] = "reject"
) -> Call[Example]:
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise refused("version", f"must be an integer, not {type(version).__name__}")
    headers = {"If-Match": f'"{version}"'} if version is not None else {}
    path = f"/v1/examples/{segment('example_id', example_id)}"
    params = {"on_duplicate": _choice("on_duplicate", on_duplicate, ("reject", "keep"))}
    return Call("PATCH", path, _model(Example), params=params, json=as_json(changes, "changes"), headers=headers)


def delete(example_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/examples/{segment('example_id', example_id)}", _nothing)


def list_page(filters: Mapping[str, Any], cursor: str | None, limit: int) -> Call[ExamplePage]:
    params = _params({**filters, "cursor": cursor, "limit": limit})
    return Call("GET", "/v1/examples", _model(ExamplePage), params=params)


def history(example_id: str) -> Call[list[HistoryEntry]]:
    return Call("GET", f"/v1/examples/{segment('example_id', example_id)}/history", _model(list[HistoryEntry]))


def label(example_id: str, value: Body) -> Call[LabelResult]:
    path = f"/v1/examples/{segment('example_id', example_id)}/labels"
    return Call("POST", path, _model(LabelResult), json=as_json(value, "label"))


def labels(example_id: str) -> Call[list[Label]]:
    return Call("GET", f"/v1/examples/{segment('example_id', example_id)}/labels", _model(list[Label]))


def _review_item(response: httpx.Response) -> ReviewItem | None:
    return None if response.status_code == 204 else ReviewItem.model_validate_json(response.content)


def review_next(annotator: str | None, blind: bool, skip: list[str]) -> Call[ReviewItem | None]:
    params = _params({"annotator": annotator, "blind": blind, "skip": skip or None})
    return Call("GET", "/v1/review/next", _review_item, params=params)


def release(example_id: str, annotator: str | None) -> Call[None]:
    params = _params({"annotator": annotator})
    return Call("POST", f"/v1/review/{segment('example_id', example_id)}/release", _nothing, params=params)


def withdraw_label(example_id: str, label_id: str) -> Call[None]:
    path = f"/v1/examples/{segment('example_id', example_id)}/labels/{segment('label_id', label_id)}"
    return Call("DELETE", path, _nothing)


def feedback(selection_id: str, outcome: str | float, note: str | None) -> Call[FeedbackReceipt]:
    body = {"selection_id": selection_id, "outcome": outcome, **({"note": note} if note is not None else {})}
    return Call("POST", "/v1/feedback", _model(FeedbackReceipt), json=body)


def add_preference(pair: Body) -> Call[Preference]:
    return Call("POST", "/v1/preferences", _model(Preference), json=as_json(pair, "pair"))


def label_preference(preference_id: str, value: Body) -> Call[PreferenceLabel]:
    path = f"/v1/preferences/{segment('preference_id', preference_id)}/labels"
    return Call("POST", path, _model(PreferenceLabel), json=as_json(value, "label"))


def stats() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/stats", _json)


def agreement() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/stats/agreement", _json)


def ready() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", _json)


def export(filters: Mapping[str, Any]) -> Call[None]:
    return Call("GET", "/v1/examples/export", _nothing, params=_params(filters))


def import_call(mode: Literal["curate", "restore"]) -> Call[dict[str, Any]]:
    params = {"mode": _choice("mode", mode, IMPORT_MODES)}
    return Call("POST", "/v1/examples/import", _json, params=params, headers={"Content-Type": "application/x-ndjson"})


class ImportBody:
    """An upload's JSONL as chunks; `replayable` tells whether it can be sent again after a 429/503.

    What can be checked is checked before sending (a missing file raised inside httpx's body stream, midway
    through the request): the file exists, and records given as a list or tuple are JSON a line can carry."""

    def __init__(self, source: ImportSource) -> None:
        if isinstance(source, str | os.PathLike):
            try:
                found = Path(source).is_file()
            except (OSError, ValueError):  # a name too long, or holding NUL: no such file either
                found = False
            if not found:
                raise FileNotFoundError(
                    errno.ENOENT,
                    "import_jsonl: no such file (a str source is a path: pass JSONL text as bytes)",
                    str(source),
                )
        elif isinstance(source, Mapping | BaseModel) or not isinstance(source, bytes | Iterable):
            raise refused("source", f"must be bytes, a file path or a list of records, not {type(source).__name__}")
        elif isinstance(source, list | tuple):
            for position, record in enumerate(source):
                _record(position, record)
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
            # A generator's records are checked as they come: one that fails stops the upload with its 422.
            for position, record in enumerate(source):
                yield json.dumps(_record(position, record), ensure_ascii=False).encode() + b"\n"


def _record(position: int, record: Body) -> dict[str, Any]:
    line = as_json(record, f"source.{position}")
    check_json(line, f"source.{position}")
    return line
