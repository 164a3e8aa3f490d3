"""Driving the workbench: a real `fewshot serve` with keys on, headless Debian Chromium through Playwright.

Shared by tests/ui and benchmarks/ui_labelling.py. Playwright never downloads a browser here: it launches
the system's /usr/bin/chromium (installed by .ci/run).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

from ..helpers import seed_rows, write_jsonl
from ..keyed import KEYS
from ..servers import free_port, wait_until_answers

CHROMIUM = Path("/usr/bin/chromium")
# The keyed service's keys, and a second curator to take what the first one hands back.
SECOND_CURATOR = ("dana-secret-0123456789", "curator", "dana")
SPEC = ",".join(f"{key}:{role}:{name}" for key, (role, name) in KEYS.items()) + ",{}:{}:{}".format(*SECOND_CURATOR)
ALL_KEYS = [*KEYS, SECOND_CURATOR[0]]
WIDE = {"width": 1280, "height": 800}


@dataclass
class Workbench:
    base_url: str
    log: Path
    database: Path

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def pending_seed_dir(root: Path, examples: int | None = None) -> Path:
    """The packaged seed bank (its first `examples`, or all) with every example pending: a review queue of
    real items."""
    write_jsonl(root / "seed.jsonl", [{**row, "status": "pending"} for row in seed_rows()[:examples]])
    return root


@contextmanager
def serve_workbench(root: Path, *, keys: bool = True, examples: int | None = None) -> Iterator[Workbench]:
    """keys=False: no API keys, so authentication is off (the server listens on loopback). examples: how
    many seed examples the bank starts with (all by default)."""
    port = free_port()
    log = root / "server.log"
    env = dict(os.environ, FEWSHOT_DATA_DIR=str(root / "data"), FEWSHOT_INDEX_DIR=str(root / "indexes"),
               FEWSHOT_SEED_DIR=str(pending_seed_dir(root / "seed", examples)))  # fmt: skip
    if keys:
        env["FEWSHOT_API_KEYS"] = SPEC
    else:
        env.pop("FEWSHOT_API_KEYS", None)
    env.pop("FEWSHOT_SEED_ON_EMPTY", None)
    env.pop("FEWSHOT_DATABASE_URL", None)
    executable = Path(sys.executable).with_name("fewshot")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(executable), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(base_url, process, log)
        yield Workbench(base_url, log, root / "data" / "bank.sqlite3")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, base_url: str, key: str, name: str = "") -> None:
    """Sign in with a key, or (key "") with a name only, as on a server without keys."""
    page.goto(f"{base_url}/ui/")
    if key:
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Enter")
    else:  # a server without keys asks for the name only
        page.get_by_label("Your name", exact=True).fill(name)
        page.get_by_label("Your name", exact=True).press("Enter")
    page.locator("#who").filter(has_text="·").wait_for()


def current_item(page: Page) -> str:
    """The id of the review item on screen (waits for one)."""
    page.locator("#item").wait_for()
    return page.locator("#item").get_attribute("data-example-id") or ""


def verdict_latencies(page: Page, items: int) -> list[float]:
    """Approve `items` queue items by key, each as soon as it is shown; the page's own key-to-shown times
    (keydown to the frame after the next item is in the DOM), in milliseconds."""
    start = page.evaluate("window.fewshotTimings.length")
    for _ in range(items):
        shown = current_item(page)
        page.keyboard.press("a")
        page.wait_for_function(
            "([before, count]) => window.fewshotTimings.length >= count"
            " && document.querySelector('#item')?.dataset.exampleId !== before",
            arg=[shown, start + 1],
        )
        start += 1
    timings: list[float] = page.evaluate("window.fewshotTimings")
    return timings[-items:]


def p50(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def guarded_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context that fails its test on any dialog the test did not handle (the page running
    something it should not), any script error, and an API key appearing in a URL."""
    context = browser.new_context(viewport=WIDE)
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    urls: list[str] = []
    opened.on("request", lambda request: urls.append(request.url))
    yield opened
    context.close()
    assert not dialogs, f"a dialog opened: {dialogs}"
    assert not errors, f"script errors: {errors}"
    assert not [u for u in urls if any(key in u for key in ALL_KEYS)], "an API key appeared in a URL"
