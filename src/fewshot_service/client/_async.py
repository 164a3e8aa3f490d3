"""AsyncFewshotClient: FewshotClient's methods for asyncio code (LangChain's aselect_examples, servers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
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
from ._calls import Body, Call, ImportBody, ImportSource
from ._config import checked_timeout, connection_settings
from ._http import NO_RETRIES, Attempts, RetryPolicy, connection_error, reading_stream
from .errors import error_from_response

T = TypeVar("T")


async def _async_chunks(make: Callable[[], Iterator[bytes]]) -> AsyncIterator[bytes]:
    for chunk in make():
        yield chunk


class AsyncFewshotClient:
    """The same methods as FewshotClient, awaited; iter_examples and export are async iterators."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        url, headers = connection_settings(base_url, api_key)
        timeout = checked_timeout(timeout)
        self.retry = retry or RetryPolicy()
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @overload
    async def select(self, prompt: str | SelectRequest, *, fields: None = None, **options: Any) -> SelectResponse: ...

    @overload
    async def select(
        self, prompt: str | SelectRequest, *, fields: Sequence[SelectableField], **options: Any
    ) -> PartialSelectResponse: ...

    async def select(
        self, prompt: str | SelectRequest, *, fields: Sequence[SelectableField] | None = None, **options: Any
    ) -> SelectResponse | PartialSelectResponse:
        return await self._run(_calls.select(prompt, fields, options))

    @overload
    async def add(self, example: Body, *, on_duplicate: Literal["reject", "keep"] = "reject") -> Example: ...

    @overload
    async def add(self, example: Body, *, on_duplicate: Literal["skip"]) -> Example | None: ...

    async def add(self, example: Body, *, on_duplicate: Literal["reject", "skip", "keep"] = "reject") -> Example | None:
        return await self._run(_calls.add(example, on_duplicate))

    async def add_many(
        self, examples: Iterable[Body], *, on_duplicate: Literal["reject", "skip", "keep"] = "reject"
    ) -> CreateResult:
        return await self._run(_calls.add_many(examples, on_duplicate))

    async def get(self, example_id: str) -> Example:
        return await self._run(_calls.get(example_id))

    async def edit(
        self, example_id: str, changes: Body, *, version: int | None = None,
        on_duplicate: Literal["reject", "keep"] = "reject",
    ) -> Example:  # fmt: skip
        return await self._run(_calls.edit(example_id, changes, version, on_duplicate))

    async def delete(self, example_id: str) -> None:
        await self._run(_calls.delete(example_id))

    async def list_examples(self, *, cursor: str | None = None, limit: int = 50, **filters: Any) -> ExamplePage:
        return await self._run(_calls.list_page(filters, cursor, limit))

    async def iter_examples(self, *, page_size: int = 100, **filters: Any) -> AsyncIterator[Example]:
        cursor: str | None = None
        while True:
            page = await self.list_examples(cursor=cursor, limit=page_size, **filters)
            for example in page.examples:
                yield example
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def history(self, example_id: str) -> list[HistoryEntry]:
        return await self._run(_calls.history(example_id))

    async def label(self, example_id: str, label: Body) -> LabelResult:
        return await self._run(_calls.label(example_id, label))

    async def labels(self, example_id: str) -> list[Label]:
        return await self._run(_calls.labels(example_id))

    async def review_next(
        self, annotator: str | None = None, *, blind: bool = False, skip: list[str] | None = None
    ) -> ReviewItem | None:
        """The next item to review, leased to this annotator (with API keys on, the key's name; another name
        needs an admin key); None when the queue is empty. skip: ids this annotator passed over."""
        return await self._run(_calls.review_next(annotator, blind, skip or []))

    async def release(self, example_id: str, annotator: str | None = None) -> None:
        """Give a leased item back to the queue before its lease runs out (a skip)."""
        return await self._run(_calls.release(example_id, annotator))

    async def withdraw_label(self, example_id: str, label_id: str) -> None:
        """Undo one of your labels: kept in the record, marked withdrawn; status and quality recomputed."""
        return await self._run(_calls.withdraw_label(example_id, label_id))

    async def feedback(self, selection_id: str, outcome: str | float, *, note: str | None = None) -> FeedbackReceipt:
        """Report how the answer built on a selection turned out: "success", "failure" or a score in [0, 1].
        Reporting again replaces the earlier outcome."""
        return await self._run(_calls.feedback(selection_id, outcome, note))

    async def add_preference(self, pair: Body) -> Preference:
        return await self._run(_calls.add_preference(pair))

    async def label_preference(self, preference_id: str, label: Body) -> PreferenceLabel:
        return await self._run(_calls.label_preference(preference_id, label))

    async def export(self, **filters: Any) -> AsyncIterator[ExampleRecord]:
        response = await self._send(_calls.export(filters), stream=True)
        try:
            with reading_stream():
                async for line in response.aiter_lines():
                    if line.strip():
                        yield ExampleRecord.model_validate_json(line)
        finally:
            await response.aclose()

    async def import_jsonl(
        self, source: ImportSource, *, mode: Literal["curate", "restore"] = "curate"
    ) -> dict[str, Any]:
        body = ImportBody(source)
        call = _calls.import_call(mode)
        policy = self.retry if body.replayable else NO_RETRIES
        return call.parse(await self._send(call, content=body.chunks, policy=policy))

    async def stats(self) -> dict[str, Any]:
        return await self._run(_calls.stats())

    async def agreement(self) -> dict[str, Any]:
        return await self._run(_calls.agreement())

    async def ready(self) -> dict[str, Any]:
        return await self._run(_calls.ready())

    async def _run(self, call: Call[T]) -> T:
        return call.parse(await self._send(call))

    async def _send(
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
                content=_async_chunks(content) if content is not None else None,
            )
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.RequestError as exc:
                wait = attempts.wait_after_transport_error(call.method, call.path)
                if wait is None:
                    raise connection_error(exc) from exc
                await asyncio.sleep(wait)
                continue
            if response.is_success:
                return response
            await response.aread()
            await response.aclose()
            wait = attempts.wait_after_status(response)
            if wait is None:
                raise error_from_response(response)
            await asyncio.sleep(wait)
