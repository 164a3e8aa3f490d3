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
    # The server said it has no keys: the form asks for a name only, focused, and shows no error before anyone typed.
    page.goto(f"{keyless.base_url}/ui/")
    expect(page.get_by_label("Your name", exact=True)).to_be_focused()
    expect(page.get_by_label("API key")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
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
    # Signing out of a server without keys asks for a name again, not for a key it has no use for.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Your name", exact=True)).to_be_focused()
    expect(page.get_by_label("API key")).to_have_count(0)
    page.close()


def test_an_empty_queue_says_how_examples_arrive_and_leads_to_the_bank(keyless: Workbench, browser: Browser) -> None:
    # "ana" labels everything the queue offers her through the API, so the workbench has nothing left for her.
    for _ in range(50):
        offered = httpx.get(f"{keyless.base_url}/v1/review/next", params={"annotator": "ana"})
        if offered.status_code == 204:  # nothing left for her
            break
        example_id = offered.json()["example"]["id"]
        answer = httpx.post(
            f"{keyless.base_url}/v1/examples/{example_id}/labels", json={"annotator": "ana", "verdict": "approve"}
        )
        assert answer.status_code == 201, answer.text
    else:
        pytest.fail("the queue never ran out")
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, keyless.base_url, "", name="ana")
    empty = page.locator("#queue-empty")
    expect(empty).to_contain_text("Nothing is waiting for your label")
    expect(empty).to_contain_text("arrive here as pending")
    empty.get_by_role("link", name="browse the bank").click()
    expect(page).to_have_url(f"{keyless.base_url}/ui/#browse")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Browse")
    page.close()
