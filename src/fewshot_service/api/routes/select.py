"""POST /v1/select: the few-shot examples for a prompt."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from ...models import SelectRequest, SelectResponse
from ..deps import Service
from ..middleware.security import CurrentPrincipal, require
from ..responses import PROTECTED, WITH_BODY

router = APIRouter(tags=["select"], dependencies=[require("reader")], responses=PROTECTED)
log = logging.getLogger(__name__)


# A plain `def`: embedding and search are CPU work and must not block the event loop.
@router.post("/v1/select", operation_id="select", response_model=SelectResponse, responses=WITH_BODY)
def select_examples(request: SelectRequest, service: Service, principal: CurrentPrincipal, http: Request) -> Response:
    """The k most relevant and diverse examples for the prompt, among those passing the filters."""
    if service.settings.log_prompts:  # prompts are users' text: logged only when the operator asks for it
        log.info("select", extra={"prompt": request.prompt, "k": request.k})
    result = service.select(request)
    result.selection_id = http.app.state.feedback.recorder.record(principal.name, request.prompt, result)
    # Serialised directly: the result was built from validated parts, re-validating it costs latency.
    return Response(result.model_dump_json(), media_type="application/json")
