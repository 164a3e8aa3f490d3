"""POST /v1/feedback: the outcome of a selection, reported by the application that asked for it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ...feedback.service import FeedbackService
from ...feedback.types import FeedbackCreate, FeedbackReceipt
from ..middleware.security import CurrentPrincipal, require
from ..responses import PROTECTED, WITH_BODY, errors

router = APIRouter(tags=["feedback"], dependencies=[require("reader")], responses=PROTECTED)


def _feedback(request: Request) -> FeedbackService:
    feedback: FeedbackService = request.app.state.feedback
    return feedback


FeedbackDep = Annotated[FeedbackService, Depends(_feedback)]


# A plain `def`: it may wait briefly for a selection another replica has not written yet.
@router.post(
    "/v1/feedback", response_model=FeedbackReceipt, operation_id="feedback", responses={**WITH_BODY, **errors(404)}
)
def feedback(body: FeedbackCreate, principal: CurrentPrincipal, service: FeedbackDep) -> FeedbackReceipt:
    """How the answer built with a selection turned out; the latest report for a selection counts. Only the
    key that made the selection may report on it (any other gets 404, as for an unknown or expired id)."""
    return service.submit(principal.name, body)
