"""Dependencies the routes declare: the service held by the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..curation import Curator
from ..service import FewshotService


def _service(request: Request) -> FewshotService:
    service: FewshotService = request.app.state.service
    return service


Service = Annotated[FewshotService, Depends(_service)]


def _curator(request: Request) -> Curator:
    curator: Curator = request.app.state.curator
    return curator


def _actor(
    x_fewshot_actor: Annotated[
        str | None, Header(max_length=200, description="Who makes the change, recorded in the history.")
    ] = None,
) -> str:
    # Until API keys land (they will name the actor), callers say who they are; anonymous otherwise.
    return (x_fewshot_actor or "").strip() or "anonymous"


CuratorDep = Annotated[Curator, Depends(_curator)]
Actor = Annotated[str, Depends(_actor)]
