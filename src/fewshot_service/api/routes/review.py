"""Preference pairs and the review queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, StringConstraints

from ...auth import annotating
from ...curation.types import (
    Preference,
    PreferenceCreate,
    PreferenceLabel,
    PreferenceLabelCreate,
    ReviewItem,
    ReviewProgress,
)
from ...models import Annotator
from ..deps import Actor, CuratorDep
from ..middleware.security import CurrentPrincipal, require
from ..responses import PROTECTED, WITH_BODY, errors

SkipId = Annotated[str, StringConstraints(max_length=64)]
ExampleKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
router = APIRouter(tags=["review"], dependencies=[require("curator")], responses=PROTECTED)


@router.post(
    "/v1/preferences",
    operation_id="create_preference",
    status_code=status.HTTP_201_CREATED,
    response_model=Preference,
    responses=WITH_BODY,
)
def add_preference(pair: PreferenceCreate, curator: CuratorDep) -> Preference:
    """Two responses to one prompt, to be compared by annotators."""
    return curator.add_preference(pair)


@router.post(
    "/v1/preferences/{preference_id}/labels",
    operation_id="label_preference",
    status_code=status.HTTP_201_CREATED,
    response_model=PreferenceLabel,
    responses={**WITH_BODY, **errors(404)},
)
def label_preference(
    preference_id: Annotated[str, Path(max_length=64)],
    label: PreferenceLabelCreate,
    curator: CuratorDep,
    principal: CurrentPrincipal,
) -> PreferenceLabel:
    """An annotator's choice, with the response shown first (position bias is measured from it).
    With API keys on the annotator is the key's name (another name needs an admin key)."""
    who = annotating(principal, label.annotator)
    return curator.label_preference(preference_id, label.model_copy(update={"annotator": who.annotator}))


@router.get("/v1/preferences/export", operation_id="export_preferences", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})  # fmt: skip
def export_preferences(curator: CuratorDep) -> StreamingResponse:
    """{prompt, chosen, rejected} JSONL, one line per label that prefers a response."""
    return StreamingResponse(curator.preference_jsonl(), media_type="application/x-ndjson")


@router.get(
    "/v1/review/next",
    operation_id="review_next",
    response_model=ReviewItem,
    responses={204: {"description": "Nothing to review"}},
)
def review_next(
    curator: CuratorDep,
    principal: CurrentPrincipal,
    annotator: Annotated[
        Annotator | None, Query(description="Required with API keys off; with keys on, the key's name.")
    ] = None,
    blind: Annotated[bool, Query(description="Hide other annotators' labels, gold answers and quality")] = False,
    skip: Annotated[
        list[ExampleKey] | None, Query(max_length=1000, description="Ids this annotator skipped: never offered.")
    ] = None,
) -> ReviewItem | Response:
    """The next item this annotator should label, leased to them for a while; skipped ids are not offered."""
    who = annotating(principal, annotator)
    item = curator.review_next(who.annotator, blind, skip or [])
    return item if item is not None else Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/review/progress", operation_id="review_progress", response_model=ReviewProgress)
def review_progress(
    curator: CuratorDep,
    principal: CurrentPrincipal,
    since: Annotated[AwareDatetime, Query(description="Count from here, e.g. the annotator's local midnight.")],
    annotator: Annotated[
        Annotator | None, Query(description="Required with API keys off; with keys on, the key's name.")
    ] = None,
) -> ReviewProgress:
    """How many labels the annotator gave since a moment (the workbench asks from local midnight: "today")."""
    who = annotating(principal, annotator)
    return curator.progress(who.annotator, since)


@router.post(
    "/v1/review/{example_id}/release",
    operation_id="release_review_item",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409),
)
def release_review_item(
    example_id: Annotated[ExampleKey, Path(description="The leased example's id.")],
    curator: CuratorDep,
    principal: CurrentPrincipal,
    actor: Actor,
    annotator: Annotated[
        Annotator | None,
        Query(description="With API keys off, whose lease (else X-Fewshot-Actor); with keys on, the key's name."),
    ] = None,
) -> Response:
    """Give the item back to the queue before the lease runs out: the lease holder, or an admin key."""
    if annotator is None and not principal.authenticated and actor != "anonymous":
        annotator = actor
    who = annotating(principal, annotator)
    curator.release(example_id, None if who.admin else who.annotator)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/preferences/next",
    operation_id="next_preference",
    response_model=Preference,
    responses={204: {"description": "Nothing to compare"}},
)
def next_preference(
    curator: CuratorDep,
    principal: CurrentPrincipal,
    annotator: Annotated[
        Annotator | None, Query(description="Required with API keys off; with keys on, the key's name.")
    ] = None,
    skip: Annotated[list[SkipId] | None, Query(max_length=500, description="Pairs passed over: not offered")] = None,
) -> Preference | Response:
    """The oldest preference pair this annotator has not labelled yet."""
    who = annotating(principal, annotator)
    pair = curator.next_preference(who.annotator, skip or [])
    return pair if pair is not None else Response(status_code=status.HTTP_204_NO_CONTENT)
