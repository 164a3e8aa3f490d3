"""create_app(): the FastAPI application, built from settings and the backends passed in."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..auth import Authenticator, is_loopback
from ..bank import SqlBank
from ..bank.guard import BankTimeouts
from ..bank.health import BankProber
from ..curation.service import Curator
from ..embedding import Embedder, load_embedder
from ..errors import BankUnavailable, FewshotError
from ..feedback.recorder import SelectionRecorder
from ..feedback.service import FeedbackService
from ..index import IndexStore
from ..quality.service import QualityService
from ..serving.follower import ChangeFollower
from ..serving.lifecycle import FewshotService
from ..serving.seeding import seed_inputs
from ..settings import Settings
from ..ui import router as ui_router
from .errors import install_error_handlers
from .metrics import Metrics, time_embeddings
from .middleware.bank_slots import BankSlots, reserve_threads
from .middleware.limits import BodySizeLimit, ConcurrencyLimit, NoNulCharacters
from .middleware.observe import Observe
from .middleware.protocol import HeadAsGet, PlainBodiesOnly
from .middleware.ratelimit import RateLimiter
from .openapi import TAGS, explicit_operation_id, install_openapi
from .query import single_valued_query
from .routes import admin, examples, expand, feedback, health, keys, me, review, select
from .routes import metrics as metrics_routes
from .routes import quality as quality_routes
from .routes import stats as stats_routes

# How long a stopping server waits for a start-up under way (loading the model, the bank, the index).
START_STOP_SECONDS = 60.0
DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's files, served by the service (bank_slots.FREE covers it)

log = logging.getLogger(__name__)


def configured_embedder(settings: Settings) -> Embedder:
    """The embedding model the settings name, on the backend they choose (ONNX Runtime when it agrees with
    sentence-transformers); what the server loads, and what benchmarks compare against."""
    return load_embedder(
        settings.model,
        settings.embedding_backend,
        settings.resolved_model_cache_dir(),
        # The packaged seed bank, not a configured one: the check must not change with the deployment.
        seed_inputs(),
        batch_size=settings.embed_batch_size,
        min_agreement=settings.embedding_min_agreement,
        lanes=settings.embed_lanes,  # the micro-batches that may run at once share the cores
    )


def build_service(settings: Settings) -> FewshotService:
    """The service with the default backends: SQL bank, the configured embedding model, index versions on disk."""
    return FewshotService(
        settings,
        SqlBank(
            settings.resolved_database_url(),
            BankTimeouts(settings.bank_connect_timeout_seconds, settings.bank_statement_timeout_seconds),
        ),
        lambda: configured_embedder(settings),
        IndexStore(settings.index_dir, settings.keep_index_versions),
    )


class _BackgroundStart:
    """service.start() on its own thread, so /healthz answers while the model, bank and index load.

    A server stopping mid-start (its port taken, a signal during the load) waits for that thread before the
    interpreter exits: a native library (PyTorch, ONNX Runtime, FAISS) still working on a thread the interpreter
    is tearing down aborts the process ("terminate called without an active exception", exit status 134)
    instead of the clean exit with the reason in the log. A start waiting for the bank stops waiting at once."""

    def __init__(self, service: FewshotService, retry_seconds: float) -> None:
        self._service = service
        self._retry_seconds = retry_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fewshot-start", daemon=True)

    def begin(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        service = self._service
        while not self._stopping.is_set():
            try:
                service.start()
                service.failure = None
                return
            except BankUnavailable:
                # The bank may come back: start again then, rather than stay failed until someone restarts us.
                self._stopping.wait(self._retry_seconds)
            except FewshotError:
                return  # logged by start(); /readyz reports it
            except Exception as exc:
                service.failure = f"start-up failed: {exc}"
                log.exception("start-up failed")
                return

    def stop(self, timeout: float = START_STOP_SECONDS) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            log.info("stopping: waiting for the start-up under way to finish (%.0f s at most)", timeout)
            self._thread.join(timeout)


def create_app(
    settings: Settings | None = None, service: FewshotService | None = None, *, start: str = "background"
) -> FastAPI:
    """start: "background" (serve /healthz at once, /readyz when loaded), "now" (load before serving)
    or "no" (the caller has started the service)."""
    settings = settings or Settings()
    service = service or build_service(settings)

    # Applies writes made through other replicas or commands to this server's index (follower.py).
    follower = ChangeFollower(service, settings.sync_poll_seconds)
    # /readyz reports the bank's state from this prober's last answer; writes fail fast while it is down.
    prober = BankProber(service.bank, settings.bank_check_seconds)
    # Selections recorded off the request thread; outcomes turned into per-example utility (issue 20).
    feedback_service = FeedbackService(
        service.bank, service.utilities, SelectionRecorder(service.bank, settings), settings, lambda: service.ready
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reserve_threads(settings.bank_request_slots)
        await asyncio.to_thread(prober.start)
        background = _BackgroundStart(service, settings.bank_check_seconds) if start == "background" else None
        if background is not None:
            background.begin()
        elif start == "now":
            service.start()
        follower.start()
        feedback_service.start()
        try:
            yield
        finally:
            if background is not None:
                await asyncio.to_thread(background.stop)
            await asyncio.to_thread(follower.stop)
            await asyncio.to_thread(prober.stop)
            await asyncio.to_thread(feedback_service.stop)

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from this service (under
    # /docs/assets, open like the pages) instead of a CDN, so the docs also work where no CDN is reachable.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="fewshot-service",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(single_valued_query)],
        description="Relevant and diverse few-shot examples for LLM prompts, from a curated example bank.",
        openapi_tags=TAGS,
        generate_unique_id_function=explicit_operation_id,
    )
    app.state.service = service
    app.state.follower = follower
    app.state.feedback = feedback_service
    app.state.curator = Curator(service)
    # LLM expansion drops generated examples the trained quality model scores low (none while untrained).
    app.state.predict_quality = QualityService(service, app.state.curator).scorer()
    app.state.settings = settings
    # Who may call what (auth.py): a server bound beyond loopback requires keys even before one exists.
    app.state.auth = Authenticator(settings.api_keys, service.bank, required=not is_loopback(settings.host))
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.metrics = Metrics(service)
    app.state.single_valued_query = {}  # (route, method) -> names, filled as routes are first called
    time_embeddings(service, app.state.metrics)
    install_error_handlers(app)
    app.add_middleware(NoNulCharacters, line_by_line=frozenset({"/v1/examples/import"}))
    # JSONL uploads stream and may be large; every other body is held to max_body_bytes.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        overrides={"/v1/examples/import": settings.max_import_bytes},
    )
    app.add_middleware(
        BankSlots,
        slots=settings.bank_request_slots,
        wait_seconds=settings.bank_queue_seconds,
        health=service.bank.health,
        refused=app.state.metrics.refused_writes,
    )
    app.add_middleware(
        ConcurrencyLimit, max_in_flight=settings.max_in_flight, queue_timeout=settings.queue_timeout_seconds
    )
    app.add_middleware(PlainBodiesOnly)
    app.add_middleware(HeadAsGet)
    # Added last, so outermost: it sees (and counts, and logs) every answer, the limits' included.
    app.add_middleware(Observe, metrics=app.state.metrics, routes=app.router.routes)
    for router in (select.router, examples.router, review.router, health.router, admin.router, expand.router):
        app.include_router(router)
    app.include_router(stats_routes.router)
    app.include_router(quality_routes.router)
    app.include_router(keys.router)
    app.include_router(metrics_routes.router)
    app.include_router(feedback.router)
    app.include_router(me.router)
    app.include_router(ui_router)  # the curator workbench at /ui
    install_openapi(app)
    return app
