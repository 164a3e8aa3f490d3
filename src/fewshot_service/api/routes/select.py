"""POST /v1/select: the few-shot examples for a prompt.

This route sits on applications' request path, so its answer takes a short way through the framework
(SelectRoute below): a well-formed request is read, checked and answered without FastAPI's dependency
machinery, which costs more per request than everything but the embedding. Anything else (a body that does
not validate, a content type other than JSON, query parameters) takes FastAPI's standard way, so every
refusal is the one the rest of the API gives. Both ways run the same checks: the key, its role, its rate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ...auth import Principal, Role
from ...models import SELECTABLE_FIELDS, PartialSelectResponse, SelectRequest, SelectResponse
from ...serving.lifecycle import FewshotService
from ..deps import Service
from ..errors import is_json_media_type
from ..middleware.security import CurrentPrincipal, bearer, check_role, current_principal, require
from ..responses import PROTECTED, WITH_BODY

ROLE: Role = "reader"
log = logging.getLogger(__name__)


class SelectRoute(APIRoute):
    """/v1/select with a short way for well-formed requests (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.query_params or not is_json_media_type(request.headers.get("content-type")):
                return await standard(request)
            try:
                body = SelectRequest.model_validate_json(await request.body())
            except (ValidationError, ClientDisconnect):
                # The standard way answers as the rest of the API does; a body read is kept for it.
                return await standard(request)
            credentials = await bearer(request)
            principal = await current_principal(request, credentials)
            check_role(principal, ROLE)
            service: FewshotService = request.app.state.service
            return await run_in_threadpool(answer, body, service, principal, request)

        return handler


router = APIRouter(tags=["select"], dependencies=[require(ROLE)], responses=PROTECTED, route_class=SelectRoute)


# A plain `def`: embedding and search are CPU work and must not block the event loop.
@router.post(
    "/v1/select",
    operation_id="select",
    response_model=SelectResponse | PartialSelectResponse,
    responses=WITH_BODY,
)
def select_examples(request: SelectRequest, service: Service, principal: CurrentPrincipal, http: Request) -> Response:
    """The k most relevant and diverse examples for the prompt, among those passing the filters."""
    return answer(request, service, principal, http)


def answer(request: SelectRequest, service: FewshotService, principal: Principal, http: Request) -> Response:
    if service.settings.log_prompts:  # prompts are users' text: logged only when the operator asks for it
        log.info("select", extra={"prompt": request.prompt, "k": request.k})
    result = service.select(request)
    result.selection_id = http.app.state.feedback.recorder.record(principal.name, request.prompt, result)
    return Response(encode(result, request.fields), media_type="application/json")


def encode(result: SelectResponse, fields: Sequence[str] | None) -> bytes:
    """The answer's JSON, each example cut to `fields` (and its id) when they were given. Serialised straight
    from the model: it was built from validated parts, and validating it again would only cost time."""
    if fields is None:
        return result.model_dump_json().encode()
    left_out = set(SELECTABLE_FIELDS).difference(fields)
    return result.model_dump_json(exclude={"examples": {"__all__": left_out}}).encode()
