"""create_app(): the FastAPI application, built from settings and the backends passed in."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..bank import SqlBank
from ..curation import Curator
from ..embedding import SentenceTransformerEmbedder
from ..errors import FewshotError
from ..index import IndexStore
from ..quality import QualityService
from ..service import FewshotService
from ..settings import Settings
from .errors import install_error_handlers
from .limits import BodySizeLimit
from .routes import admin, examples, expand, health, review, select
from .routes import quality as quality_routes
from .routes import stats as stats_routes

log = logging.getLogger(__name__)


def build_service(settings: Settings) -> FewshotService:
    """The service with the default backends: SQL bank, sentence-transformers, index versions on disk."""
    return FewshotService(
        settings,
        SqlBank(settings.resolved_database_url()),
        lambda: SentenceTransformerEmbedder(settings.model, settings.embed_batch_size),
        IndexStore(settings.index_dir, settings.keep_index_versions),
    )


def _start_in_background(service: FewshotService) -> None:
    def run() -> None:
        try:
            service.start()
        except FewshotError:
            pass  # logged by start(); /readyz reports it
        except Exception as exc:
            service.failure = f"start-up failed: {exc}"
            log.exception("start-up failed")

    threading.Thread(target=run, name="fewshot-start", daemon=True).start()


def create_app(
    settings: Settings | None = None, service: FewshotService | None = None, *, start: str = "background"
) -> FastAPI:
    """start: "background" (serve /healthz at once, /readyz when loaded), "now" (load before serving)
    or "no" (the caller has started the service)."""
    settings = settings or Settings()
    service = service or build_service(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start == "background":
            _start_in_background(service)
        elif start == "now":
            service.start()
        yield

    app = FastAPI(
        title="fewshot-service",
        version=__version__,
        lifespan=lifespan,
        description="Relevant and diverse few-shot examples for LLM prompts, from a curated example bank.",
    )
    app.state.service = service
    app.state.curator = Curator(service)
    # LLM expansion drops generated examples the trained quality model scores low (none while untrained).
    app.state.predict_quality = QualityService(service, app.state.curator).scorer()
    app.state.settings = settings
    install_error_handlers(app)
    # JSONL uploads stream and may be large; every other body is held to max_body_bytes.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        overrides={"/v1/examples/import": settings.max_import_bytes},
    )
    for router in (select.router, examples.router, review.router, health.router, admin.router, expand.router):
        app.include_router(router)
    app.include_router(stats_routes.router)
    app.include_router(quality_routes.router)
    return app
