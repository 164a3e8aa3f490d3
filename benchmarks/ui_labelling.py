"""Labelling throughput in the curator workbench (issue 18): verdict key to the next item fully shown.

    python benchmarks/ui_labelling.py [--items 50] [--no-record]

Starts `fewshot serve` with API keys on the packaged seed bank (every example pending, so the review queue
holds a few hundred real items), opens /ui in headless Debian Chromium (/usr/bin/chromium, driven by
Playwright; no browser is downloaded), signs in as a curator and approves --items queue items by pressing
`a` as soon as each is shown. The page times each press itself: keydown to the frame after the next item
is in the DOM (label POST, next-item GET, render, paint). p50 and p90 are printed and appended to
benchmarks/RESULTS.md. Target: p50 <= 150 ms. tests/ui/test_workbench.py runs the same measurement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the workbench driver is shared with the browser tests

import scale  # noqa: E402  (benchmarks/ is on the path when a script runs)
from harness import machine_info, record_section  # noqa: E402

from tests.keyed import KEY_OF  # noqa: E402
from tests.ui.workbench import chromium, serve_workbench, sign_in, verdict_latencies  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Curator workbench labelling (issue 18, benchmarks/ui_labelling.py)"
TARGET_MS = 150.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    load_start = scale.load_average()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as root, serve_workbench(Path(root)) as workbench, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, workbench.base_url, KEY_OF["curator"])
        timings = verdict_latencies(page, args.items)
    p50 = statistics.median(timings)
    p90 = statistics.quantiles(timings, n=10)[-1]
    line = (
        f"verdict key to next item shown, over {len(timings)} items: p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
        f"max {max(timings):.1f} ms (target p50 <= {TARGET_MS:.0f} ms: {'met' if p50 <= TARGET_MS else 'missed'})"
    )
    print(line)
    if not args.no_record:
        record_section(
            "\n".join(
                [
                    f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                    "",
                    f"Machine: {machine_info()}. Load average (1/5/15 min) {load_start} at the start, "
                    f"{scale.load_average()} at the end.",
                    "",
                    f"Command: `python benchmarks/ui_labelling.py --items {args.items}` "
                    f"({time.monotonic() - started:.0f} s with server start-up). Headless Chromium "
                    f"(/usr/bin/chromium), 1280×800, one curator approving seed items by key.",
                    "",
                    f"Result: {line}.",
                ]
            ),
            SECTION,
            RESULTS,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
