"""Serves the workbench's page, its static files and the labelling guidelines, under a strict CSP.

The page holds no data: it fetches everything from the API with the key the curator signs in with, so
these routes need no key. Files are read from the package (importlib.resources), so an installed wheel
serves what the source tree does.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import NotFound
from ..settings import Settings

router = APIRouter(include_in_schema=False)

# No inline script or style, no other origin: a bank text that slipped into markup could run nothing.
# blob: images are the charts, fetched with the key and shown from memory.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
TYPES = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
STATIC_NAME = re.compile(r"^[a-z][a-z0-9-]*\.(js|css|svg)$")


def packaged(name: str) -> bytes:
    """A file shipped in the ui package (static/ files, guidelines.md)."""
    return files(__package__).joinpath(name).read_bytes()


def _answer(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=HEADERS)


@router.get("/ui")
def ui_root() -> RedirectResponse:
    # Relative URLs in the page resolve against /ui/, so the bare path moves there.
    return RedirectResponse("/ui/", status_code=308, headers=HEADERS)


@router.get("/ui/")
def ui_page() -> Response:
    return _answer(packaged("static/index.html"), "text/html; charset=utf-8")


@router.get("/ui/keys.json")
async def ui_keys(request: Request) -> Response:
    """Whether the service asks for API keys: the page shows the right sign-in form before anyone signed in,
    instead of calling /v1/me to be refused (a 401 in the console). /v1/me tells anyone as much."""
    auth = request.app.state.auth
    enabled = auth.enabled() if auth.settled() else await run_in_threadpool(auth.enabled)
    return JSONResponse({"auth_enabled": enabled}, headers=HEADERS)


@router.get("/ui/static/{name}")
def ui_static(name: Annotated[str, Path(max_length=64)]) -> Response:
    found = STATIC_NAME.fullmatch(name)
    resource = files(__package__).joinpath("static", name)
    if not found or not resource.is_file():
        raise NotFound(f"no workbench file {name!r}", field="name")
    return _answer(resource.read_bytes(), f"{TYPES[found.group(1)]}; charset=utf-8")


@router.get("/ui/guidelines.md")
def ui_guidelines(request: Request) -> Response:
    """The labelling guidelines as Markdown text; the page renders it as text nodes, never as HTML."""
    settings: Settings = request.app.state.settings
    if settings.guidelines_file is not None:
        try:
            body = settings.guidelines_file.read_bytes()
        except OSError as exc:
            raise NotFound(
                f"FEWSHOT_GUIDELINES_FILE {str(settings.guidelines_file)!r} cannot be read", field="guidelines_file"
            ) from exc
    else:
        body = packaged("guidelines.md")
    return _answer(body, "text/markdown; charset=utf-8")
