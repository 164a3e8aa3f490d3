"""Labelling and editing stay safe when the curator is fast, or others change the bank meanwhile: found by a
hostile probe of the workbench in Chromium. Each test drives headless Chromium against a real `fewshot serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from ..keyed import KEY_OF
from .workbench import (
    CHROMIUM,
    SECOND_CURATOR,
    WIDE,
    Workbench,
    chromium,
    current_item,
    guarded_page,
    serve_workbench,
    sign_in,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")
# browse/review/browse/... 5 ms apart, as a curator clicking through the pages (or a script) can.
HOP = """(hashes) => new Promise((done) => hashes.forEach((hash, n) => setTimeout(() => {
    location.hash = hash;
    if (n === hashes.length - 1) done();
}, 5 * n)))"""


@pytest.fixture(scope="module")
def workbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    with serve_workbench(tmp_path_factory.mktemp("safety"), examples=60) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with guarded_page(browser) as opened:
        yield opened


def now() -> str:
    return datetime.now(UTC).isoformat()


def labelled_since(workbench: Workbench, since: str) -> int:
    """Labels cara stored (and did not undo) since `since`."""
    with workbench.api(KEY_OF["curator"]) as api:
        answer = api.get("/v1/review/progress", params={"since": since, "annotator": "cara"})
        return int(answer.json()["labelled"])


def live_labels(workbench: Workbench, example_id: str) -> list[dict[str, Any]]:
    with workbench.api(KEY_OF["curator"]) as api:
        return [label for label in api.get(f"/v1/examples/{example_id}/labels").json() if not label["withdrawn_at"]]


def pending_in_bank(workbench: Workbench) -> str:
    with workbench.api(KEY_OF["curator"]) as api:
        return str(api.get("/v1/stats").json()["by_status"].get("pending", 0))


def add_example(workbench: Workbench, **fields: Any) -> dict[str, Any]:
    body = {"input": "What is 6 times 7?", "output": "42", "steps": ["6 * 7 = 42"], "topic": "arithmetic", **fields}
    with workbench.api(KEY_OF["curator"]) as api:
        created = api.post("/v1/examples", params={"on_duplicate": "keep"}, json=body)
        assert created.status_code == 201, created.text
        return dict(created.json()["examples"][0])


def test_a_key_acts_only_on_the_page_showing_and_only_once(workbench: Workbench, page: Page) -> None:
    """Review -> Browse 5 ms apart left the review screen's key handler alive: `a` on Browse approved an
    unseen item, and one `a` on Review labelled the item shown and hidden ones."""
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    current_item(page)
    since = now()
    page.evaluate(HOP, ["browse", "review", "browse", "review", "browse"])
    page.locator("#results tbody tr").first.wait_for()
    page.wait_for_timeout(800)  # every page started has finished loading
    page.keyboard.press("a")
    page.wait_for_timeout(800)
    assert labelled_since(workbench, since) == 0, "a key on Browse labelled an item"

    page.evaluate(HOP, ["review", "browse", "review", "browse", "review"])
    page.wait_for_timeout(800)
    shown = current_item(page)
    page.keyboard.press("a")
    expect(page.locator("#item")).not_to_have_attribute("data-example-id", shown)
    expect(page.locator("#undo")).to_be_enabled()  # the label is stored
    page.wait_for_timeout(800)
    assert labelled_since(workbench, since) == 1
    assert [label["verdict"] for label in live_labels(workbench, shown)] == ["approve"]


def test_double_click_on_approve_labels_one_item(workbench: Workbench, page: Page) -> None:
    """The second click landed on the next item's Approve button, which had replaced the first."""
    # Items of the same shape come first (LLM-generated), so the buttons stay where the pointer is.
    made = [add_example(workbench, input=f"Double click probe {n}: what is 2 + {n}?", output=str(2 + n),
                        steps=[f"2 + {n} = {2 + n}"], source="llm")["id"] for n in range(3)]  # fmt: skip
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    first = current_item(page)
    while first not in made:  # past items an earlier test left leased to cara
        page.keyboard.press("s")
        expect(page.locator("#item")).not_to_have_attribute("data-example-id", first)
        first = current_item(page)
    page.wait_for_timeout(500)  # as a curator's pointer would reach the button
    since = now()
    page.get_by_role("button", name="Approve (a)").dblclick()
    expect(page.locator("#item")).not_to_have_attribute("data-example-id", first)
    second = current_item(page)
    expect(page.locator("#undo")).to_be_enabled()
    page.wait_for_timeout(800)
    assert labelled_since(workbench, since) == 1
    assert len(live_labels(workbench, first)) == 1 and live_labels(workbench, second) == []
    page.get_by_role("button", name="Approve (a)").click()  # one click, a moment later, still counts
    expect(page.locator("#item")).not_to_have_attribute("data-example-id", second)
    page.wait_for_timeout(800)
    assert len(live_labels(workbench, second)) == 1


def test_a_label_on_content_edited_meanwhile_is_refused_and_the_new_content_shown(
    workbench: Workbench, page: Page
) -> None:
    """An approval counted for an output the curator never saw: another curator had changed it meanwhile."""
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    shown = current_item(page)
    with workbench.api(SECOND_CURATOR[0]) as dana:
        version = dana.get(f"/v1/examples/{shown}").json()["version"]
        edited = dana.patch(f"/v1/examples/{shown}", json={"output": "changed by dana"},
                            headers={"If-Match": f'"{version}"'})  # fmt: skip
        assert edited.status_code == 200, edited.text
    page.keyboard.press("a")
    expect(page.locator("#notice")).to_contain_text("edited while you were reading it")
    expect(page.locator("#item")).to_have_attribute("data-example-id", shown)
    expect(page.locator("#item-output")).to_have_text("changed by dana")
    assert live_labels(workbench, shown) == []
    page.keyboard.press("a")  # judged again, on what it says now
    expect(page.locator("#item")).not_to_have_attribute("data-example-id", shown)
    expect(page.locator("#undo")).to_be_enabled()
    assert [label["verdict"] for label in live_labels(workbench, shown)] == ["approve"]
    expect(page.locator("#notice")).to_be_hidden()


def test_an_item_deleted_by_someone_else_is_said_so_and_left_behind(workbench: Workbench, page: Page) -> None:
    """`a` on a deleted item brought it back ("The item is back"); `s` failed on the 404 of the release."""
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    with workbench.api(KEY_OF["admin"]) as admin:
        for key in ("a", "s"):
            shown = current_item(page)
            assert admin.delete(f"/v1/examples/{shown}").status_code == 204
            page.keyboard.press(key)
            expect(page.locator("#notice")).to_contain_text("deleted by someone else")
            expect(page.locator("#item")).not_to_have_attribute("data-example-id", shown)
            page.wait_for_timeout(500)  # a refused label would have brought it back by now
            expect(page.locator("#item")).not_to_have_attribute("data-example-id", shown)


def test_pending_count_follows_undo_and_the_undo_notice_goes_once_relabelled(workbench: Workbench, page: Page) -> None:
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    shown = current_item(page)
    count = page.locator("#pending-count")
    expect(count).to_have_text(pending_in_bank(workbench))
    page.keyboard.press("a")
    expect(page.locator("#undo")).to_be_enabled()
    expect(count).to_have_text(pending_in_bank(workbench))
    page.keyboard.press("u")
    expect(page.locator("#item")).to_have_attribute("data-example-id", shown)
    expect(page.locator("#notice")).to_contain_text("Label removed")
    expect(count).to_have_text(pending_in_bank(workbench))
    page.keyboard.press("r")
    expect(page.locator("#item")).not_to_have_attribute("data-example-id", shown)
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#undo")).to_be_enabled()
    expect(count).to_have_text(pending_in_bank(workbench))


def test_withdrawn_labels_are_marked_and_not_counted(workbench: Workbench, page: Page) -> None:
    example = add_example(workbench, input="Withdrawn label probe: what is 3 + 4?", output="7")
    path = f"/v1/examples/{example['id']}/labels"
    with workbench.api(KEY_OF["curator"]) as api:
        first = api.post(path, json={"verdict": "reject", "note": "first line\nsecond line"}).json()["label"]
        assert api.delete(f"{path}/{first['id']}").status_code == 204
        assert api.post(path, json={"verdict": "reject"}).status_code == 201
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
    expect(page.get_by_role("heading", name="Labels (1)")).to_be_visible()
    expect(page.locator("#labels li")).to_have_count(2)
    expect(page.locator("#labels li.withdrawn")).to_have_count(1)
    expect(page.locator("#labels li.withdrawn")).to_contain_text("Withdrawn")
    # The note's line break shows as one.
    note = page.locator("#labels li.withdrawn .muted")
    assert note.evaluate("node => getComputedStyle(node).whiteSpace") == "pre-wrap"


def test_tags_with_commas_are_kept_and_typed_duplicates_stored_once(workbench: Workbench, page: Page) -> None:
    example = add_example(workbench, input="Tag probe: what is 5 + 5?", output="10", tags=["a,b", "1,000 lines", "c"])
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
    tags = page.get_by_label("Tags")
    expect(tags).to_have_value("a,b\n1,000 lines\nc")
    tags.press("Control+End")
    tags.type("\nnewtag\ndup\ndup\nDUP")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: version 2.")).to_be_visible()
    with workbench.api(KEY_OF["curator"]) as api:
        stored = api.get(f"/v1/examples/{example['id']}").json()["tags"]
    assert stored == ["a,b", "1,000 lines", "c", "newtag", "dup", "DUP"]


def test_double_click_on_save_saves_once_without_a_conflict_with_yourself(workbench: Workbench, page: Page) -> None:
    example = add_example(workbench, input="Save probe: what is 8 + 1?", output="9")
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
    page.get_by_label("Output").fill("nine")
    page.get_by_role("button", name="Save").dblclick()
    expect(page.get_by_text("Saved: version 2.")).to_be_visible()
    page.wait_for_timeout(800)
    expect(page.locator("#conflict")).to_be_hidden()
    expect(page.locator("#notice")).to_have_text("Saved: version 2.")


def test_after_save_the_form_shows_the_new_updated_time(workbench: Workbench, page: Page) -> None:
    example = add_example(workbench, input="Updated probe: what is 8 + 2?", output="10")
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
    line = page.locator("form.edit p.muted").first
    expect(line).to_contain_text("updated")
    updated_at = line.inner_text().split("updated ")[1]
    page.wait_for_timeout(1100)  # the time shown has seconds: a save a second later shows another
    page.get_by_label("Output").fill("ten")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: version 2.")).to_be_visible()
    assert line.inner_text().split("updated ")[1] != updated_at


def test_saving_an_example_deleted_meanwhile_says_so(workbench: Workbench, page: Page) -> None:
    example = add_example(workbench, input="Delete probe: what is 9 + 9?", output="18")
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
    expect(page.get_by_label("Output")).to_have_value("18")
    with workbench.api(KEY_OF["admin"]) as admin:
        assert admin.delete(f"/v1/examples/{example['id']}").status_code == 204
    page.get_by_label("Output").fill("eighteen")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#notice")).to_contain_text("This example was deleted (by someone else)")
    expect(page.get_by_label("Output")).to_have_value("eighteen")  # still there to copy


@pytest.mark.parametrize("address", ["#example/", "#example"])
def test_an_example_address_without_an_id_says_so(workbench: Workbench, page: Page, address: str) -> None:
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/{address}")
    expect(page.locator("main")).to_contain_text("no example id in the address")
    page.get_by_role("link", name="Browse the bank").click()
    page.locator("#results tbody tr").first.wait_for()


def test_unsaved_edits_are_not_lost_without_a_warning(workbench: Workbench, browser: Browser) -> None:
    example = add_example(workbench, input="Unsaved probe: what is 4 + 4?", output="8")
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    asked: list[str] = []
    answer = {"leave": False}

    def on_dialog(dialog: Any) -> None:
        asked.append(dialog.type)
        (dialog.accept if answer["leave"] else dialog.dismiss)()

    page.on("dialog", on_dialog)
    try:
        sign_in(page, workbench.base_url, KEY_OF["curator"])
        page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
        page.get_by_role("link", name="Browse").click()  # nothing edited: no question
        page.locator("#results tbody tr").first.wait_for()
        page.go_back()
        page.get_by_label("Output").fill("eight")
        page.get_by_role("link", name="Browse").click()
        expect(page.get_by_label("Output")).to_have_value("eight")  # stayed
        expect(page).to_have_url(re.compile(r"#example/"))
        assert asked == ["confirm"]
        page.get_by_role("button", name="Sign out").click()  # signing out would lose them too: asked, stays
        expect(page.get_by_label("Output")).to_have_value("eight")
        assert asked == ["confirm", "confirm"]
        # A reload or closing the tab asks the browser's own question.
        prevented = page.evaluate(
            "() => { const e = new Event('beforeunload', { cancelable: true }); window.dispatchEvent(e);"
            " return e.defaultPrevented; }"
        )
        assert prevented
        answer["leave"] = True
        page.get_by_role("link", name="Browse").click()
        page.locator("#results tbody tr").first.wait_for()
        assert asked == ["confirm", "confirm", "confirm"]
        assert not page.evaluate(
            "() => { const e = new Event('beforeunload', { cancelable: true }); window.dispatchEvent(e);"
            " return e.defaultPrevented; }"
        )
    finally:
        context.close()


# Elements wider than the window, not counting those inside a box that scrolls sideways on its own.
OVERFLOWING = """() => [...document.querySelectorAll("body *")].filter((node) => {
    const box = node.getBoundingClientRect();
    if (box.width === 0 || (box.left >= 0 && box.right <= innerWidth + 0.5)) return false;
    for (let up = node.parentElement; up; up = up.parentElement) {
        if (/auto|scroll/.test(getComputedStyle(up).overflowX)) return false;
    }
    return true;
}).map((node) => `${node.tagName}#${node.id}.${node.className}: ${node.getBoundingClientRect().right}`)"""


def test_a_narrow_window_fits_every_page_in_one_column(workbench: Workbench, page: Page) -> None:
    """At 420 px Browse results (489 px) and the Health cards (559 px) were wider than the window."""
    page.set_viewport_size({"width": 420, "height": 800})
    sign_in(page, workbench.base_url, KEY_OF["admin"])
    page.goto(f"{workbench.base_url}/ui/#browse")
    page.locator("#results tbody tr").first.wait_for()
    # Words wrap between words: a status is not cut in two (its cell stays one line high).
    status = page.locator("#results tbody tr").first.locator("td").nth(3)
    assert status.evaluate("node => node.offsetHeight < 40")
    example = page.locator("#results tbody a").first.get_attribute("href")
    for address, shown in (("#browse", "#results tbody tr"), ("#health", "#agreement table"),
                           ("#review", "#item"), (example, "#history li")):  # fmt: skip
        page.goto(f"{workbench.base_url}/ui/{address}")
        page.locator(shown).first.wait_for()
        page.wait_for_timeout(300)  # the other cards of the page have loaded too
        assert page.evaluate(OVERFLOWING) == [], address
        assert page.evaluate("document.documentElement.scrollWidth") <= 420, address


def test_the_sign_in_form_comes_without_a_refused_request(workbench: Workbench, page: Page) -> None:
    """The page called /v1/me without a key to learn that the server has keys: a 401 in the console each load."""
    refused: list[str] = []
    page.on("response", lambda response: refused.append(response.url) if response.status == 401 else None)
    page.goto(f"{workbench.base_url}/ui/")
    expect(page.get_by_label("API key")).to_be_focused()
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    assert refused == []


def test_a_key_with_characters_no_key_has_is_explained(workbench: Workbench, page: Page) -> None:
    """It showed fetch's "Failed to execute 'fetch' ... non ISO-8859-1 code point"."""
    page.goto(f"{workbench.base_url}/ui/")
    page.get_by_label("API key").fill("ключ-curator-secret")
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("characters an API key never has")
    sign_in(page, workbench.base_url, KEY_OF["curator"])  # and a good key still signs in


def test_a_key_revoked_mid_session_leads_back_to_signing_in(workbench: Workbench, page: Page) -> None:
    with workbench.api(KEY_OF["admin"]) as admin:
        created = admin.post("/v1/admin/keys", json={"name": "rik", "role": "curator"}).json()
        sign_in(page, workbench.base_url, created["key"])
        current_item(page)
        assert admin.delete(f"/v1/admin/keys/{created['id']}").status_code == 204
    page.get_by_role("link", name="Browse").click()
    expect(page.get_by_role("alert")).to_contain_text("no longer accepted")
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()


def test_more_loads_each_page_once_even_on_a_double_click(workbench: Workbench, page: Page) -> None:
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.goto(f"{workbench.base_url}/ui/#browse")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="More").dblclick()
    expect(rows).not_to_have_count(50)
    page.wait_for_timeout(800)
    links = page.locator("#results tbody a").evaluate_all("nodes => nodes.map((node) => node.getAttribute('href'))")
    assert len(links) == len(set(links)) and len(links) <= 100


def test_when_every_item_is_skipped_the_page_says_where_the_pending_ones_are(workbench: Workbench, page: Page) -> None:
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    for _ in range(200):
        if page.locator("#queue-empty").count():
            break
        shown = current_item(page)
        page.keyboard.press("s")
        page.locator(f"#item:not([data-example-id='{shown}']), #queue-empty").first.wait_for()
    empty = page.locator("#queue-empty")
    expect(empty).to_contain_text(re.compile(r"you skipped \d+ item\(s\) this session"))
    expect(empty).to_contain_text("leased to other curators")
    expect(page.locator("#pending-count")).not_to_have_text("0")
