"""Preference pairs and the review queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from ...curation.types import (
    Preference,
    PreferenceCreate,
    PreferenceLabel,
    PreferenceLabelCreate,
    ReviewItem,
)
from ...models import Annotator
from ..deps import CuratorDep
from ..middleware.security import require
from ..responses import PROTECTED, WITH_BODY, errors

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
) -> ReviewItem | Response:
    """The next item this annotator should label, leased to them for a while."""
    item = curator.review_next(annotator, blind)
    return item if item is not None else Response(status_code=status.HTTP_204_NO_CONTENT)
