"""FewshotClient: the service's API as typed methods, over httpx, with retries on 429 and 503."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Self, TypeVar, overload

import httpx

from ..curation.types import (
    CreateResult,
    ExamplePage,
    ExampleRecord,
    HistoryEntry,
    LabelResult,
    Preference,
    PreferenceLabel,
    ReviewItem,
)
from ..feedback.types import FeedbackReceipt
from ..models import Example, Label, PartialSelectResponse, SelectableField, SelectRequest, SelectResponse
from . import _calls
from ._async import AsyncFewshotClient
from ._calls import Body, Call, ImportBody, ImportSource
from ._config import checked_timeout, connection_settings
from ._http import NO_RETRIES, Attempts, RetryPolicy, connection_error, reading_stream
from .errors import error_from_response

T = TypeVar("T")


class FewshotClient:
    """base_url defaults to FEWSHOT_URL (else http://127.0.0.1:8000), api_key to FEWSHOT_API_KEY."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        url, headers = connection_settings(base_url, api_key)
        timeout = checked_timeout(timeout)
        self.retry = retry or RetryPolicy()
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def async_twin(self) -> AsyncFewshotClient:
        """An AsyncFewshotClient to the same service with the same key, timeout and retries (close it after use)."""
        http = httpx.AsyncClient(base_url=self._http.base_url, headers=self._http.headers, timeout=self._http.timeout)
        twin = AsyncFewshotClient(retry=self.retry, http=http)
        twin._owns_http = True  # made here for the caller, so closing the twin closes it
        return twin

    # -- selection --------------------------------------------------------------------------------------
    @overload
    def select(self, prompt: str | SelectRequest, *, fields: None = None, **options: Any) -> SelectResponse: ...

    @overload
    def select(
        self, prompt: str | SelectRequest, *, fields: Sequence[SelectableField], **options: Any
    ) -> PartialSelectResponse: ...

    def select(
        self, prompt: str | SelectRequest, *, fields: Sequence[SelectableField] | None = None, **options: Any
    ) -> SelectResponse | PartialSelectResponse:
        """POST /v1/select; options are SelectRequest's fields (k, strategy, diversity, filters, format, ...).
        With `fields` (say ["input", "output"]) each example holds its id and those fields only: a
        PartialSelectResponse, less to send and parse."""
        return self._run(_calls.select(prompt, fields, options))

    # -- curation ---------------------------------------------------------------------------------------
    @overload
    def add(self, example: Body, *, on_duplicate: Literal["reject", "keep"] = "reject") -> Example: ...

    @overload
    def add(self, example: Body, *, on_duplicate: Literal["skip"]) -> Example | None: ...

    def add(self, example: Body, *, on_duplicate: Literal["reject", "skip", "keep"] = "reject") -> Example | None:
        """Add one example (pending unless its status says otherwise); 409 Conflict on a duplicate, or with
        on_duplicate="skip" None (nothing stored; add_many names the duplicate). A batch goes to add_many."""
        return self._run(_calls.add(example, on_duplicate))

    def add_many(
        self, examples: Iterable[Body], *, on_duplicate: Literal["reject", "skip", "keep"] = "reject"
    ) -> CreateResult:
        """Add up to 500 examples at once, all or nothing unless on_duplicate="skip"."""
        return self._run(_calls.add_many(examples, on_duplicate))

    def get(self, example_id: str) -> Example:
        return self._run(_calls.get(example_id))

    def edit(
        self, example_id: str, changes: Body, *, version: int | None = None,
        on_duplicate: Literal["reject", "keep"] = "reject",
    ) -> Example:  # fmt: skip
        """Change the fields given (None clears); with `version`, 409 Conflict if it changed since; a new input
        that duplicates another example is 409 Conflict (code "duplicate") unless on_duplicate="keep"."""
        return self._run(_calls.edit(example_id, changes, version, on_duplicate))

    def delete(self, example_id: str) -> None:
        self._run(_calls.delete(example_id))

    def list_examples(self, *, cursor: str | None = None, limit: int = 50, **filters: Any) -> ExamplePage:
        """One page; filters are topic, difficulty_min/max, source, status, tag, q."""
        return self._run(_calls.list_page(filters, cursor, limit))

    def iter_examples(self, *, page_size: int = 100, **filters: Any) -> Iterator[Example]:
        """Every matching example, following the cursor page after page."""
        cursor: str | None = None
        while True:
            page = self.list_examples(cursor=cursor, limit=page_size, **filters)
            yield from page.examples
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def history(self, example_id: str) -> list[HistoryEntry]:
        return self._run(_calls.history(example_id))

    def label(self, example_id: str, label: Body) -> LabelResult:
        """A quality label (annotator, verdict, score, issues, ...); returns it with the updated example."""
        return self._run(_calls.label(example_id, label))

    def labels(self, example_id: str) -> list[Label]:
        return self._run(_calls.labels(example_id))

    def review_next(
        self, annotator: str | None = None, *, blind: bool = False, skip: list[str] | None = None
    ) -> ReviewItem | None:
        """The next item to review, leased to this annotator (with API keys on, the key's name; another name
        needs an admin key); None when the queue is empty. skip: ids this annotator passed over."""
        return self._run(_calls.review_next(annotator, blind, skip or []))

    def release(self, example_id: str, annotator: str | None = None) -> None:
        """Give a leased item back to the queue before its lease runs out (a skip)."""
        return self._run(_calls.release(example_id, annotator))

    def withdraw_label(self, example_id: str, label_id: str) -> None:
        """Undo one of your labels: kept in the record, marked withdrawn; status and quality recomputed."""
        return self._run(_calls.withdraw_label(example_id, label_id))

    def feedback(self, selection_id: str, outcome: str | float, *, note: str | None = None) -> FeedbackReceipt:
        """Report how the answer built on a selection turned out: "success", "failure" or a score in [0, 1].
        Reporting again replaces the earlier outcome."""
        return self._run(_calls.feedback(selection_id, outcome, note))

    def add_preference(self, pair: Body) -> Preference:
        return self._run(_calls.add_preference(pair))

    def label_preference(self, preference_id: str, label: Body) -> PreferenceLabel:
        return self._run(_calls.label_preference(preference_id, label))

    def export(self, **filters: Any) -> Iterator[ExampleRecord]:
        """The matching examples with their labels, read line by line as the server streams them."""
        with self._open(_calls.export(filters), stream=True) as response, reading_stream():
            for line in response.iter_lines():
                if line.strip():
                    yield ExampleRecord.model_validate_json(line)

    def import_jsonl(self, source: ImportSource, *, mode: Literal["curate", "restore"] = "curate") -> dict[str, Any]:
        """Upload JSONL (bytes, a file path, or records), streamed; returns the report ("imported", "errors",
        ...). mode="restore" (admin keys) reproduces an export exactly, labels and dates included; a missing
        file is FileNotFoundError before anything is sent."""
        body = ImportBody(source)
        call = _calls.import_call(mode)
        policy = self.retry if body.replayable else NO_RETRIES
        return call.parse(self._send(call, content=body.chunks, policy=policy))

    # -- monitoring -------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self._run(_calls.stats())

    def agreement(self) -> dict[str, Any]:
        return self._run(_calls.agreement())

    def ready(self) -> dict[str, Any]:
        """GET /readyz: the served index version and size; Unavailable while loading."""
        return self._run(_calls.ready())

    # -- transport --------------------------------------------------------------------------------------
    def _run(self, call: Call[T]) -> T:
        return call.parse(self._send(call))

    @contextmanager
    def _open(self, call: Call[Any], *, stream: bool) -> Iterator[httpx.Response]:
        response = self._send(call, stream=stream)
        try:
            yield response
        finally:
            response.close()

    def _send(
        self,
        call: Call[Any],
        *,
        stream: bool = False,
        content: Callable[[], Iterator[bytes]] | None = None,
        policy: RetryPolicy | None = None,
    ) -> httpx.Response:
        attempts = Attempts(policy or self.retry)
        while True:
            attempts.made += 1
            request = self._http.build_request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                headers=call.headers,
                content=content() if content is not None else None,
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.RequestError as exc:
                wait = attempts.wait_after_transport_error(call.method, call.path)
                if wait is None:
                    raise connection_error(exc) from exc
                time.sleep(wait)
                continue
            if response.is_success:
                return response
            response.read()
            response.close()
            wait = attempts.wait_after_status(response)
            if wait is None:
                raise error_from_response(response)
            time.sleep(wait)
