"""The workbench on a server without API keys (loopback development): a name instead of a key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from .workbench import CHROMIUM, Workbench, chromium, current_item, serve_workbench, sign_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    with serve_workbench(tmp_path_factory.mktemp("keyless"), keys=False, examples=20) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_without_keys_a_name_signs_in_and_labels_under_that_name(keyless: Workbench, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, keyless.base_url, "", name="lee")
    expect(page.locator("#who")).to_have_text("lee · admin (no keys)")
    labelled = current_item(page)
    page.keyboard.press("3")
    page.keyboard.press("a")
    page.locator(f"#item:not([data-example-id='{labelled}'])").wait_for()
    expect(page.locator("#done-count")).to_have_text("1")
    (label,) = httpx.get(f"{keyless.base_url}/v1/examples/{labelled}/labels").json()
    assert (label["annotator"], label["verdict"], label["score"]) == ("lee", "approve", 3)
    history = httpx.get(f"{keyless.base_url}/v1/examples/{labelled}/history").json()
    assert history[-1]["actor"] == "lee"
    # Skipping hands the item back without keys too: another annotator is offered it next.
    skipped = current_item(page)
    page.keyboard.press("s")
    page.locator(f"#item:not([data-example-id='{skipped}'])").wait_for()
    offered = httpx.get(f"{keyless.base_url}/v1/review/next", params={"annotator": "kim"}).json()
    assert offered["example"]["id"] == skipped
    page.close()
