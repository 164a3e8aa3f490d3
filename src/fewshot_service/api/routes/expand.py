"""LLM expansion of the bank (admin role)."""

from __future__ import annotations

from fastapi import APIRouter

from ...expansion import Expander, ExpandRequest, ExpansionReport
from ..deps import Actor, CuratorDep, QualityScorerDep
from ..middleware.security import require
from ..responses import PROTECTED, WITH_BODY, errors

router = APIRouter(tags=["operations"], dependencies=[require("admin")], responses=PROTECTED)


@router.post(
    "/v1/admin/expand", operation_id="expand", response_model=ExpansionReport, responses={**WITH_BODY, **errors(502)}
)
def expand(body: ExpandRequest, curator: CuratorDep, actor: Actor, scorer: QualityScorerDep) -> ExpansionReport:
    """Have the configured LLM write new examples for one cell (topic, difficulty, n) or for every cell below
    its target (fill_gaps); they are stored as source=llm, status=pending for review, and the report counts
    what was generated, stored and dropped (and why), the calls, retries and tokens.

    The call returns when the run ends. 503 when no LLM endpoint is configured, 502 when it fails before
    answering anything; a run that fails later returns its report with stopped=llm_error.
    """
    expander = Expander(curator, predict_quality=scorer)
    return expander.run(expander.plan(body), actor=actor)
