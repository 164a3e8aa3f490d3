"""POST /v1/select: the few-shot examples for a prompt."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ...models import SelectRequest, SelectResponse
from ..deps import Service

router = APIRouter(tags=["select"])


# A plain `def`: embedding and search are CPU work and must not block the event loop.
@router.post(
    "/v1/select",
    response_model=SelectResponse,
    responses={
        422: {"description": "Invalid request (the error names the field)"},
        503: {"description": "The service is still loading"},
    },
)
def select_examples(request: SelectRequest, service: Service) -> Response:
    """The k most relevant and diverse examples for the prompt, among those passing the filters."""
    result = service.select(request)
    # Serialised directly: the result was built from validated parts, re-validating it costs latency.
    return Response(result.model_dump_json(), media_type="application/json")
