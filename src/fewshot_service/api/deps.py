"""Dependencies the routes declare: the service held by the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..service import FewshotService


def _service(request: Request) -> FewshotService:
    service: FewshotService = request.app.state.service
    return service


Service = Annotated[FewshotService, Depends(_service)]
