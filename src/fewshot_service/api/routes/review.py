"""Preference pairs and the review queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from ...curation.types import (
    Preference,
    PreferenceCreate,
    PreferenceLabel,
    PreferenceLabelCreate,
    ReviewItem,
)
from ...models import Annotator
from ..deps import Actor, CuratorDep
from ..middleware.security import CurrentPrincipal, require
from ..responses import PROTECTED, WITH_BODY, errors

SkipId = Annotated[str, StringConstraints(max_length=64)]
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
    preference_id: Annotated[str, Path(max_length=64)], label: PreferenceLabelCreate, curator: CuratorDep
) -> PreferenceLabel:
    """An annotator's choice, with the response shown first (position bias is measured from it)."""
    return curator.label_preference(preference_id, label)


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
    annotator: Annotated[Annotator, Query()],
    curator: CuratorDep,
    blind: Annotated[bool, Query(description="Hide other annotators' labels")] = False,
    skip: Annotated[list[SkipId] | None, Query(max_length=500, description="Items passed over: not offered")] = None,
) -> ReviewItem | Response:
    """The next item this annotator should label, leased to them for a while."""
    item = curator.review_next(annotator, blind, skip or [])
    return item if item is not None else Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/review/{example_id}/release",
    operation_id="release_review_item",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404),
)
def release_review_item(
    example_id: Annotated[str, Path(max_length=64)], curator: CuratorDep, actor: Actor, principal: CurrentPrincipal
) -> Response:
    """Skip: hand a leased item back to the queue at once, for another annotator. The lease holder's own
    lease (the key's name, or X-Fewshot-Actor without keys); an admin releases anyone's."""
    curator.release(example_id, None if principal.may("admin") else actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/preferences/next",
    operation_id="next_preference",
    response_model=Preference,
    responses={204: {"description": "Nothing to compare"}},
)
def next_preference(
    annotator: Annotated[Annotator, Query()],
    curator: CuratorDep,
    skip: Annotated[list[SkipId] | None, Query(max_length=500, description="Pairs passed over: not offered")] = None,
) -> Preference | Response:
    """The oldest preference pair this annotator has not labelled yet."""
    pair = curator.next_preference(annotator, skip or [])
    return pair if pair is not None else Response(status_code=status.HTTP_204_NO_CONTENT)
