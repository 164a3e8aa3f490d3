"""The API docs pages in a real browser that can reach nothing but the service, as on a closed network."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route

from .workbench import CHROMIUM, Workbench, chromium, serve_workbench

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    with serve_workbench(tmp_path_factory.mktemp("docs"), keys=False, examples=2) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_swagger_ui_shows_every_operation_without_reaching_beyond_the_service(
    service: Workbench, browser: Browser
) -> None:
    page = browser.new_page()
    elsewhere: list[str] = []

    def only_the_service(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(service.base_url).netloc:
            route.continue_()
        else:  # a CDN the page would need: refused, as a closed network would
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.goto(f"{service.base_url}/docs")
    page.locator(".opblock").first.wait_for()
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/v1/select", "/v1/examples", "/v1/review/next"} <= {p.replace("\u200b", "") for p in paths}
    assert not [url for url in elsewhere if url.endswith((".js", ".css"))], elsewhere
    page.close()
