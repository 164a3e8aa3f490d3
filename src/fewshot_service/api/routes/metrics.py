"""GET /metrics: the Prometheus text format (reader role when authentication is on)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import MetricsDep
from ..middleware.security import require
from ..responses import PROTECTED

router = APIRouter(tags=["operations"], dependencies=[require("reader")], responses=PROTECTED)


@router.get(
    "/metrics", operation_id="metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}
)
def metrics(registry: MetricsDep) -> Response:
    """Requests and their latency per route template, the served index's size and version, embedding time.
    A scraper sends a reader key (`authorization` in Prometheus' scrape config)."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
