"""Dependencies the routes declare: the service and settings held by the app, the acting key's name.

All async: FastAPI runs a plain `def` dependency in the thread pool, and a thread hop costs more than the
attribute read it would make (each was one more hop on every /v1/select)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..auth import Authenticator
from ..curation.service import Curator
from ..expansion.types import QualityScorer
from ..models import shows_something
from ..monitoring.service import Monitor
from ..serving.lifecycle import FewshotService
from ..settings import Settings
from .metrics import Metrics
from .middleware.security import CurrentPrincipal


async def _service(request: Request) -> FewshotService:
    service: FewshotService = request.app.state.service
    return service


Service = Annotated[FewshotService, Depends(_service)]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def _curator(request: Request) -> Curator:
    curator: Curator = request.app.state.curator
    return curator


async def _actor(
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
    name = _utf8(x_fewshot_actor or "").strip()
    return name if shows_something(name) else "anonymous"


def _utf8(header_value: str) -> str:
    """A header's text as the client meant it: Starlette decodes header bytes as Latin-1, while curl and
    browsers send a name like "José" as UTF-8 (read as Latin-1 it would be recorded as "JosÃ©")."""
    try:
        return header_value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return header_value


CuratorDep = Annotated[Curator, Depends(_curator)]
Actor = Annotated[str, Depends(_actor)]


async def _auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _quality_scorer(request: Request) -> QualityScorer | None:
    # The quality model registers its scorer once trained; without one nothing is scored.
    scorer: QualityScorer | None = getattr(request.app.state, "predict_quality", None)
    return scorer


AuthDep = Annotated[Authenticator, Depends(_auth)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
QualityScorerDep = Annotated[QualityScorer | None, Depends(_quality_scorer)]


async def _monitor(service: Service) -> Monitor:
    return Monitor(service.bank, service.settings)  # stateless: built per request, nothing on app.state


MonitorDep = Annotated[Monitor, Depends(_monitor)]
