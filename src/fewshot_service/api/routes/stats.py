"""Monitoring the bank: its shape, the reliability of its labels, and charts of both."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from ...errors import FeatureNotInstalled, NotFound
from ...models import Status
from ...monitoring.agreement import AgreementReport
from ...monitoring.stats import StatsReport
from ..deps import MonitorDep, SettingsDep
from ..middleware.security import require
from ..responses import PROTECTED, errors

router = APIRouter(tags=["monitoring"], dependencies=[require("curator")], responses=PROTECTED)


@router.get("/v1/stats", operation_id="get_stats", response_model=StatsReport)
def stats(monitor: MonitorDep, request: Request) -> StatsReport:
    """Counts by topic × difficulty × source × status, coverage gaps, near-duplicate clusters, label
    throughput per day and balance (normalised entropies); utility from feedback, with the flagged examples."""
    report = monitor.stats()
    report.utility = request.app.state.feedback.stats()
    return report


@router.get("/v1/stats/agreement", operation_id="get_agreement", response_model=AgreementReport)
def agreement(monitor: MonitorDep) -> AgreementReport:
    """Inter-annotator agreement per question (verdict, score, steps), per-annotator agreement with the
    consensus and accuracy on gold examples, implausibly fast labels, position bias of preference labels."""
    return monitor.agreement()


@router.get(
    "/v1/stats/charts/{name}.png",
    operation_id="get_chart",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **errors(404)},
)
def chart(
    name: Annotated[str, Path(max_length=64)],
    monitor: MonitorDep,
    settings: SettingsDep,
    status: Annotated[
        list[Status] | None, Query(max_length=10, description="Examples drawn (default: the chart's own)")
    ] = None,
) -> Response:
    """topic_difficulty (heatmap, coverage), difficulty_by_topic (histograms) or source_mix, as a PNG."""
    try:  # matplotlib loads on the first chart, not with the app, and only where [monitoring] is installed
        from ...monitoring.charts import CHARTS, render_chart
    except ImportError as exc:
        raise FeatureNotInstalled.needing("charts", "monitoring", exc) from exc

    if name not in CHARTS:
        raise NotFound(f"no chart {name!r}; the charts are {', '.join(CHARTS)}", field="name")
    png = render_chart(name, monitor.cell_counts(), coverage_target=settings.coverage_target, statuses=status)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
