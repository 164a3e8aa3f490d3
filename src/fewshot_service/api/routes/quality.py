"""The quality model: train it from curator labels, score the bank, inspect its scores."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...models import Status
from ...quality.model import QualityModelInfo
from ...quality.service import ExampleScore, QualityService, ScoreResult, TrainResult
from ..deps import CuratorDep, Service
from ..middleware.security import require
from ..responses import PROTECTED, errors

router = APIRouter(tags=["quality model"], dependencies=[require("admin")], responses=PROTECTED)


@router.post(
    "/v1/admin/quality/train",
    operation_id="train_quality_model",
    response_model=TrainResult,
    responses=errors(409),  # too few labelled examples of a class (code not_enough_labels)
)
def train(service: Service, curator: CuratorDep) -> TrainResult:
    """Train on curator verdicts (see README), report cross-validated ROC-AUC and calibration, save the model
    with the bank revision it saw and write predicted_quality on every live example."""
    service.served()  # 503 while starting: the embedder and the served index are not ready yet
    return QualityService(service, curator).train()


@router.post(
    "/v1/admin/quality/score", operation_id="score_examples", response_model=ScoreResult, responses=errors(404)
)  # none trained yet
def score(service: Service, curator: CuratorDep) -> ScoreResult:
    """Score every live example again with the current model (e.g. after a batch of new examples)."""
    service.served()
    return QualityService(service, curator).score()


@router.get(
    "/v1/admin/quality", operation_id="get_quality_model", response_model=QualityModelInfo, responses=errors(404)
)  # none trained yet
def model_info(service: Service) -> QualityModelInfo:
    """The model in use: when it was trained, on which bank revision, and its cross-validated metrics."""
    return QualityService(service).info()


@router.get("/v1/admin/quality/scores", operation_id="list_quality_scores", response_model=list[ExampleScore])
def scores(
    service: Service,
    status: Annotated[
        list[Status] | None, Query(max_length=10, description="Only these statuses (default pending)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExampleScore]:
    """Examples with their predicted quality, most uncertain (nearest 0.5) first, as the review queue takes
    them; unscored ones last."""
    return QualityService(service).scores(status or ["pending"], limit)
