"""The curator workbench in headless Chromium against a real `fewshot serve` with keys on."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from fewshot_service.bank import SqlBank

from ..keyed import KEY_OF
from .workbench import (
    ALL_KEYS,
    CHROMIUM,
    SECOND_CURATOR,
    Workbench,
    chromium,
    current_item,
    guarded_page,
    p50,
    serve_workbench,
    sign_in,
    verdict_latencies,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "ui"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def workbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    with serve_workbench(tmp_path_factory.mktemp("workbench")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with guarded_page(browser) as opened:
        yield opened


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
    # Every control on every page photographed has a label a screen reader can read out.
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input, select, textarea')]"
        ".filter((e) => !e.labels.length && !e.getAttribute('aria-label')).map((e) => e.name)"
    )
    assert unlabelled == [], f"inputs without a label on {name}: {unlabelled}"


def test_reader_sees_no_labelling_controls(workbench: Workbench, page: Page) -> None:
    sign_in(page, workbench.base_url, KEY_OF["reader"])
    expect(page.get_by_role("heading", name="Read-only key")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    page.goto(f"{workbench.base_url}/ui/#review")
    expect(page.get_by_role("heading", name="Read-only key")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("Approve|Reject|Needs fix|Skip")).count() == 0
    assert page.locator("#item").count() == 0
    shot(page, "reader")


def test_bank_text_with_markup_renders_as_text_and_runs_nothing(workbench: Workbench, page: Page) -> None:
    with workbench.api(KEY_OF["curator"]) as api:
        # An LLM-generated pending example comes first in the queue, so the review screen shows it.
        markup = {"input": XSS, "output": "<b>42</b>", "steps": ["<script>alert(2)</script>"]}
        created = api.post("/v1/examples", json={**markup, "source": "llm", "topic": "arithmetic", "difficulty": 1})
        assert created.status_code == 201, created.text
    example_id = created.json()["examples"][0]["id"]
    page.goto(f"{workbench.base_url}/ui/")
    expect(page.get_by_label("API key")).to_be_visible()
    shot(page, "sign-in")
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    assert current_item(page) == example_id
    expect(page.locator("#item-input")).to_have_text(XSS)
    expect(page.locator("#item-output")).to_have_text("<b>42</b>")
    expect(page.locator("#steps")).to_contain_text("<script>alert(2)</script>")
    assert page.locator("#item img, #item b, #item script").count() == 0
    page.keyboard.press("r")  # out of the queue, for the tests that follow
    expect(page.locator("#item")).not_to_have_attribute("data-example-id", example_id)

    page.goto(f"{workbench.base_url}/ui/#browse?q=src%3Dx%20onerror")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page.locator("#results tbody a")).to_have_text(XSS)
    page.locator("#results tbody a").click()
    expect(page.get_by_label("Input")).to_have_value(XSS)
    assert page.locator("main img").count() == 0
    page.wait_for_timeout(300)  # time for an onerror handler to fire, were the markup ever parsed

    # The guidelines' Markdown renderer makes text nodes: markup in a guidelines file is shown, not parsed.
    rendered = page.evaluate(
        """async (source) => {
            const { renderMarkdown } = await import("/ui/static/markdown.js");
            const box = document.createElement("div");
            box.append(...renderMarkdown(source));
            return [box.querySelectorAll("img").length, box.querySelector("strong").textContent, box.textContent];
        }""",
        f"# Rules\n\n{XSS} **bold**",
    )
    assert rendered == [0, "bold", f"Rules{XSS} bold"]

    response = page.request.get(f"{workbench.base_url}/ui/")
    csp = response.headers["content-security-policy"]
    for rule in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                 "frame-ancestors 'none'"):  # fmt: skip
        assert rule in csp
    assert "unsafe-inline" not in csp


def test_skip_releases_the_lease_to_another_curator(workbench: Workbench, page: Page) -> None:
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    skipped = current_item(page)
    page.keyboard.press("s")
    page.locator(f"#item:not([data-example-id='{skipped}'])").wait_for()
    with workbench.api(SECOND_CURATOR[0]) as dana:
        taken = dana.get("/v1/review/next", params={"annotator": "dana"})
        assert taken.status_code == 200 and taken.json()["example"]["id"] == skipped
        assert dana.post(f"/v1/review/{skipped}/release").status_code == 204


def test_label_three_items_by_keyboard_with_step_ratings(workbench: Workbench, page: Page) -> None:
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    expect(page.locator("#item")).to_be_visible()
    expect(page.locator(".guidelines h2").first).to_have_text("Labelling guidelines")

    first = current_item(page)
    page.keyboard.press("4")
    page.keyboard.press("a")
    second = page.locator(f"#item:not([data-example-id='{first}'])")
    second.wait_for()
    second_id = current_item(page)
    for _ in range(20):  # on to an item whose worked solution has two steps or more
        if page.locator("#steps li").count() >= 2:
            break
        page.keyboard.press("s")
        page.locator(f"#item:not([data-example-id='{second_id}'])").wait_for()
        second_id = current_item(page)
    steps = page.locator("#steps li").count()
    assert steps >= 2
    # A step's line breaks and indentation show as written (a step of code read as one line before).
    white_space = page.locator("#steps li .step-text").first.evaluate("node => getComputedStyle(node).whiteSpace")
    assert white_space == "pre-wrap"
    page.keyboard.press("ArrowDown")  # first step
    page.keyboard.press("+")
    page.keyboard.press("-")  # the second step is wrong
    expect(page.locator("#steps li").nth(1)).to_contain_text("first wrong step")
    expect(page.locator(".progress")).not_to_contain_text("…", timeout=30_000)  # progress figures loaded
    shot(page, "review")
    page.keyboard.press("2")
    page.keyboard.press("r")
    page.locator(f"#item:not([data-example-id='{second_id}'])").wait_for()
    third_id = current_item(page)
    page.keyboard.press("f")
    expect(page.get_by_label("Corrected output")).to_be_focused()
    shot(page, "review-needs-fix")
    page.keyboard.press("Control+a")
    page.keyboard.type("corrected: 7")
    page.keyboard.press("Tab")
    page.keyboard.type("the unit was missing")
    page.keyboard.press("Control+Enter")
    page.locator(f"#item:not([data-example-id='{third_id}'])").wait_for()
    expect(page.locator("#done-count")).to_have_text("3")

    with workbench.api(KEY_OF["curator"]) as api:
        since = page.evaluate("(() => { const d = new Date(); d.setHours(0, 0, 0, 0); return d.toISOString(); })()")
        today = api.get("/v1/review/progress", params={"since": since}).json()["labelled"]
        assert today >= 3  # the key's labels from the browser's midnight, earlier tests' included
        expect(page.locator("#today-count")).to_have_text(str(today))
        labels = {i: api.get(f"/v1/examples/{i}/labels").json() for i in (first, second_id, third_id)}
    (one,), (two,), (three,) = labels[first], labels[second_id], labels[third_id]
    assert (one["annotator"], one["verdict"], one["score"], one["step_ratings"]) == ("cara", "approve", 4, None)
    assert two["verdict"] == "reject" and two["score"] == 2
    assert two["step_ratings"] == [1, -1] + [0] * (steps - 2)
    assert two["first_wrong_step"] == 1
    assert three["verdict"] == "needs_fix"
    assert (three["corrected_output"], three["note"]) == ("corrected: 7", "the unit was missing")


def test_undo_removes_the_last_label_and_shows_its_item_again(workbench: Workbench, page: Page) -> None:
    with workbench.api(KEY_OF["curator"]) as api:
        paths = api.get("/openapi.json").json()["paths"]
    if "delete" not in paths.get("/v1/examples/{example_id}/labels/{label_id}", {}):
        pytest.skip("waiting on the label-undo route (DELETE /v1/examples/{id}/labels/{label_id}, integrity branch)")
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    labelled = current_item(page)
    page.keyboard.press("a")
    page.locator(f"#item:not([data-example-id='{labelled}'])").wait_for()
    following = current_item(page)
    expect(page.locator("#undo")).to_be_enabled()
    page.keyboard.press("u")
    expect(page.locator("#item")).to_have_attribute("data-example-id", labelled)
    with workbench.api(KEY_OF["curator"]) as api:
        [undone] = api.get(f"/v1/examples/{labelled}/labels").json()  # kept in the record, marked withdrawn
        assert undone["withdrawn_at"] and api.get(f"/v1/examples/{labelled}").json()["status"] == "pending"
    page.keyboard.press("r")  # labelled again; the item that was showing comes back next
    expect(page.locator("#item")).to_have_attribute("data-example-id", following)
    # The next item is shown before the label's POST has answered; undo is offered once it is stored.
    expect(page.locator("#undo")).to_be_enabled()
    with workbench.api(KEY_OF["curator"]) as api:
        current = [label for label in api.get(f"/v1/examples/{labelled}/labels").json() if not label["withdrawn_at"]]
        assert [label["verdict"] for label in current] == ["reject"]


def test_preference_pair_by_keyboard_records_what_was_shown_first(workbench: Workbench, page: Page) -> None:
    with workbench.api(KEY_OF["curator"]) as api:
        pairs = [
            api.post(
                "/v1/preferences", json={"prompt": f"{n} + {n}?", "response_a": f"{2 * n}", "response_b": "?"}
            ).json()["id"]
            for n in (3, 4)
        ]
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    page.get_by_role("link", name="Preferences").click()
    shown_left = {}
    for key in ("ArrowLeft", "ArrowRight"):
        pair = page.locator("#pair")
        pair.wait_for()
        pair_id = pair.get_attribute("data-preference-id") or ""
        shown_left[pair_id] = page.locator("[data-side=left]").get_attribute("data-response")
        if key == "ArrowLeft":
            shot(page, "preferences")
        page.keyboard.press(key)
        page.locator(f"#pair:not([data-preference-id='{pair_id}']), #pairs-empty").wait_for()
    assert set(shown_left) == set(pairs)
    stored = {
        label.preference_id: label for _, label in SqlBank(f"sqlite:///{workbench.database}").iter_preference_labels()
    }
    for pair_id, key in zip(shown_left, ("ArrowLeft", "ArrowRight"), strict=True):
        left = shown_left[pair_id]
        right = "b" if left == "a" else "a"
        assert stored[pair_id].shown_first == left
        assert stored[pair_id].choice == (left if key == "ArrowLeft" else right)
        assert stored[pair_id].annotator == "cara"


def test_edit_conflict_is_shown_and_nothing_is_lost(workbench: Workbench, page: Page) -> None:
    with workbench.api(KEY_OF["curator"]) as api:
        example = api.get("/v1/examples", params={"topic": "geometry", "limit": 1}).json()["examples"][0]
        approved = api.post(f"/v1/examples/{example['id']}/labels", json={"verdict": "approve", "score": 5})
        example = approved.json()["example"]  # approved, so /v1/select may serve it
        with workbench.api(KEY_OF["reader"]) as reader:  # an application serves it once
            body = {"prompt": "A question about shapes and their areas", "k": 50, "strategy": "knn",
                    "filters": {"topics": ["geometry"]}}  # fmt: skip
            picked = reader.post("/v1/select", json=body).json()
        assert example["status"] == "approved" and example["id"] in [e["id"] for e in picked["examples"]]
        _wait_until_recorded(api, example["id"])
        changes_before = len(api.get(f"/v1/examples/{example['id']}/history").json())
        sign_in(page, workbench.base_url, KEY_OF["curator"])
        page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
        expect(page.get_by_label("Output")).to_have_value(example["output"])
        theirs = api.patch(f"/v1/examples/{example['id']}", json={"output": "theirs"},
                           headers={"If-Match": f'"{example["version"]}"'})  # fmt: skip
        assert theirs.status_code == 200
        page.get_by_label("Output").fill("mine")
        page.get_by_role("button", name="Save").click()
        conflict = page.locator("#conflict")
        expect(conflict).to_be_visible()
        expect(conflict).to_contain_text("Conflict")
        expect(conflict).to_contain_text("theirs")
        expect(page.get_by_label("Output")).to_have_value("mine")
        shot(page, "conflict")
        assert api.get(f"/v1/examples/{example['id']}").json()["output"] == "theirs"
        page.get_by_role("button", name="Keep mine (save over theirs)").click()
        expect(conflict).to_be_hidden()
        assert api.get(f"/v1/examples/{example['id']}").json()["output"] == "mine"
    expect(page.locator("#history li")).to_have_count(changes_before + 2)  # their edit, then mine
    expect(page.locator("#served")).to_contain_text(re.compile(r"Served [1-9]\d* times? in the last day"))


def test_an_edit_into_another_examples_input_names_it_and_saves_only_when_asked(
    workbench: Workbench, page: Page
) -> None:
    """A duplicate is not someone else's save: the page says which example the input repeats, links to it,
    keeps the edit in the form, and saves it only on "Save anyway"."""
    with workbench.api(KEY_OF["curator"]) as api:
        mine, other = api.get("/v1/examples", params={"topic": "probability", "limit": 2}).json()["examples"]
        sign_in(page, workbench.base_url, KEY_OF["curator"])
        page.goto(f"{workbench.base_url}/ui/#example/{mine['id']}")
        page.get_by_label("Input").fill(other["input"].upper())
        page.get_by_role("button", name="Save").click()
        notice = page.locator("#conflict")
        expect(notice).to_contain_text("would duplicate another example")
        expect(notice).to_contain_text("reads the same as")
        expect(notice.get_by_role("link", name=other["id"])).to_have_attribute("href", f"#example/{other['id']}")
        expect(notice).not_to_contain_text("someone saved")
        expect(page.get_by_label("Input")).to_have_value(other["input"].upper())
        assert api.get(f"/v1/examples/{mine['id']}").json()["version"] == mine["version"]
        page.get_by_role("button", name="Save anyway").click()
        expect(notice).to_be_hidden()
        expect(page.locator("#version")).to_have_text(str(mine["version"] + 1))
        assert api.get(f"/v1/examples/{mine['id']}").json()["input"] == other["input"].upper()


def test_an_edit_keeps_steps_and_tags_as_stored_and_edits_steps_one_by_one(workbench: Workbench, page: Page) -> None:
    """Steps were one textarea split on line breaks and trimmed: saving a new topic rewrote a step with code in
    it into several steps without its indentation, and a tag holding a comma into two tags."""
    steps = ["Define the function:\ndef double(x):", "Return twice the input:\n    return 2 * x"]
    with workbench.api(KEY_OF["curator"]) as api:
        body = {"input": "Write a Python function that doubles a number.", "output": "def double(x):\n    return 2 * x",
                "steps": steps, "topic": "programming", "tags": ["1,000 lines"], "status": "approved"}  # fmt: skip
        example = api.post("/v1/examples", json=body).json()["examples"][0]
        sign_in(page, workbench.base_url, KEY_OF["curator"])
        page.goto(f"{workbench.base_url}/ui/#example/{example['id']}")
        expect(page.get_by_label("Step 2", exact=True)).to_have_value(steps[1])
        page.get_by_label("Topic").fill("python")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Saved: version 2.")).to_be_visible()
        stored = api.get(f"/v1/examples/{example['id']}").json()
        assert (stored["topic"], stored["steps"], stored["tags"]) == ("python", steps, ["1,000 lines"])
        assert api.get(f"/v1/examples/{example['id']}/history").json()[-1]["changes"].keys() == {"topic"}

        page.get_by_label("Step 2", exact=True).fill("Return twice the input:\n    return x + x")
        page.get_by_role("button", name="Add step").click()
        page.get_by_label("Step 3", exact=True).fill("Check it:\n    assert double(21) == 42")
        page.get_by_role("button", name="Remove step 1").click()
        expect(page.get_by_label("Step 1", exact=True)).to_have_value("Return twice the input:\n    return x + x")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Saved: version 3.")).to_be_visible()
        shot(page, "steps-edited")
        stored = api.get(f"/v1/examples/{example['id']}").json()
        assert stored["steps"] == [
            "Return twice the input:\n    return x + x",
            "Check it:\n    assert double(21) == 42",
        ]
        assert stored["tags"] == ["1,000 lines"] and stored["output"] == body["output"]


def _wait_until_recorded(api: httpx.Client, example_id: str) -> None:
    """Selections are written off the request thread, in batches: wait for the one just made."""
    deadline = time.monotonic() + 10
    while api.get(f"/v1/examples/{example_id}/usage").json()["served_last_day"] == 0:
        assert time.monotonic() < deadline, "the selection was never recorded"
        time.sleep(0.1)


def test_browse_and_health_pages(workbench: Workbench, page: Page) -> None:
    twins = ["A kite string 50 m long makes a 30 degree angle with the ground. How high is the kite?",
             "A kite string 50 metres long makes a 30 degree angle with the ground. How high is the kite?"]  # fmt: skip
    with workbench.api(KEY_OF["curator"]) as api:
        stored = api.post("/v1/examples", params={"on_duplicate": "keep"},
                          json={"examples": [{"input": text, "output": "25 m"} for text in twins]})  # fmt: skip
        assert stored.status_code == 201, stored.text
    twin_ids = {example["id"] for example in stored.json()["examples"]}
    sign_in(page, workbench.base_url, KEY_OF["admin"])
    page.get_by_role("link", name="Health").click()
    thin = page.locator("#coverage td.thin a").first
    thin.wait_for()
    expect(page.locator("#agreement table").first).to_be_visible()
    expect(page.locator("#charts img")).to_be_visible()
    expect(page.locator("#quality")).to_contain_text("No quality model trained yet")
    shot(page, "health")
    cluster = page.locator("#clusters ol > li", has_text="A kite string").first
    cluster.locator("a").first.click()
    expect(page.locator("#results tbody tr")).to_have_count(2)
    opened = {page.locator("#results tbody a").nth(n).get_attribute("href") for n in range(2)}
    assert opened == {f"#example/{i}" for i in twin_ids}
    page.go_back()
    thin = page.locator("#coverage td.thin a").first
    label = thin.get_attribute("aria-label") or ""
    topic, difficulty = re.match(r"(.+), difficulty (\d)", label).groups()  # type: ignore[union-attr]
    thin.click()
    expect(page).to_have_url(re.compile(r"#browse\?"))
    page.locator("#results tbody tr").first.wait_for()
    rows = page.locator("#results tbody tr")
    for n in range(rows.count()):
        expect(rows.nth(n).locator("td").nth(1)).to_have_text(topic)
        expect(rows.nth(n).locator("td").nth(2)).to_have_text(difficulty)
    shot(page, "browse")
    page.set_viewport_size({"width": 420, "height": 800})
    page.get_by_role("link", name="Review").click()
    page.locator("#item").wait_for()
    shot(page, "review-narrow")


def test_labelling_latency(workbench: Workbench, page: Page) -> None:
    """The benchmark: verdict key to the next item shown, p50 over 50 seed items (reported, not asserted)."""

    def labels_by_cara() -> int:
        with workbench.api(KEY_OF["curator"]) as api:
            report = api.get("/v1/stats/agreement").json()
        return next((a["labels"] for a in report["per_annotator"] if a["annotator"] == "cara"), 0)

    before = labels_by_cara()
    sign_in(page, workbench.base_url, KEY_OF["curator"])
    timings = verdict_latencies(page, 50)
    assert len(timings) == 50
    print(f"\nui labelling: verdict key to next item shown, p50 {p50(timings):.1f} ms over 50 items (target 150 ms)")
    # The next item shows before the label's POST returns: every one of them is stored all the same.
    expect(page.locator("#done-count")).to_have_text("50")
    assert labels_by_cara() == before + 50
    assert all(key not in workbench.log.read_text() for key in ALL_KEYS), "an API key was logged"
