"""`fewshot serve`: the HTTP service."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from typing import Annotated, Any

import typer

from .errors import fail, run
from .setup import setup


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default FEWSHOT_HOST).")] = None,
    # Bounded here as FEWSHOT_PORT is in the settings: the socket layer takes 70000 as 70000 % 65536 = 4464.
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default FEWSHOT_PORT, 8000).")] = None,
) -> None:
    """Run the HTTP service; it loads the bank and index in the background (watch /readyz).

    Beyond loopback it needs API keys (FEWSHOT_API_KEYS or `fewshot keys create`) and refuses to start
    without them; on loopback without keys it serves everyone as admin and says so."""
    import uvicorn

    from .. import logs
    from ..api import create_app
    from ..auth import check_bind
    from ..bank import SqlBank
    from ..embedding.sentence_transformer import resolve_model
    from ..index import IndexStore
    from ..serving.memory import limit_malloc_arenas
    from ..serving.seeding import seed_files

    limit_malloc_arenas()  # before any server thread allocates: see memory.py
    # A request thread waiting for the interpreter gets it after at most 1 ms instead of Python's 5, so
    # requests are not held up while a background thread of this process replays changes or loads an index.
    sys.setswitchinterval(0.001)
    settings = setup(ctx).settings()
    settings = settings.model_copy(
        update={"host": settings.host if host is None else host, "port": settings.port if port is None else port}
    )
    logs.configure(settings.log_level, settings.log_format)

    def prepare() -> tuple[str | None, Any]:
        bank = SqlBank(settings.resolved_database_url())
        try:
            # An empty database is migrated here; one at another schema revision stops the server before it
            # binds, with the one line that names `fewshot db upgrade`.
            bank.create_schema()
            note = check_bind(settings.api_keys, settings.host, bank)
            if settings.seed_on_empty and settings.seed_dir is not None and bank.count() == 0:
                seed_files(settings.seed_dir)  # a mistyped FEWSHOT_SEED_DIR stops serve before it binds
        finally:
            bank.close()
        # Before the model and index load: a taken port is the commonest reason a second `make serve` fails,
        # and uvicorn would only find out once they are loaded.
        _check_listen(settings.host, settings.port)
        # An index folder that cannot be made would otherwise fail the start-up after binding, leaving a
        # server that answers 503 for ever.
        IndexStore(settings.index_dir).prepare_dirs()
        resolve_model(settings.model)  # a FEWSHOT_MODEL path that is not there, likewise
        return note, create_app(settings)

    note, application = run(prepare)
    if note:
        logging.getLogger("fewshot_service.serve").warning(note)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # logs.configure() set up every logger, uvicorn's included
        access_log=False,  # the app writes its own access line, with the request id and route
    )


def _check_listen(host: str, port: int) -> None:
    """Refuse, with the reason, a host:port this process could not listen on now; checked the way uvicorn binds
    (SO_REUSEADDR, so a port left in TIME_WAIT by a server that just stopped does not count as taken)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {host!r} does not resolve ({exc.strerror or exc})") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            hint = (
                ". Another process (an earlier `fewshot serve`?) has it: stop it, or choose another port with --port"
                " or FEWSHOT_PORT."
                if exc.errno == errno.EADDRINUSE
                else ""
            )
            raise fail(f"cannot listen on {host}:{port}: {reason}{hint}") from exc
