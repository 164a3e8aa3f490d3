"""Dependencies the routes declare: the service and settings held by the app, the acting key's name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..curation.service import Curator
from ..serving.lifecycle import FewshotService
from ..settings import Settings
from .middleware.security import CurrentPrincipal


def _service(request: Request) -> FewshotService:
    service: FewshotService = request.app.state.service
    return service


Service = Annotated[FewshotService, Depends(_service)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


def _curator(request: Request) -> Curator:
    curator: Curator = request.app.state.curator
    return curator


def _actor(
    principal: CurrentPrincipal,
    x_fewshot_actor: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Who makes the change, recorded in the history; ignored when a key is sent (its name is).",
        ),
    ] = None,
) -> str:
    # With authentication on the key names the actor, so nobody can write history under another's name.
    if principal.authenticated:
        return principal.name
    return (x_fewshot_actor or "").strip() or "anonymous"


CuratorDep = Annotated[Curator, Depends(_curator)]
Actor = Annotated[str, Depends(_actor)]
