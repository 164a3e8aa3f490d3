"""The change-feed follower: keeps a running server's index in step with writes made by other processes.

Several replicas share one bank (and may share one index directory). Each holds its own FAISS index; a
curator's write through replica A updates A's index at once (curation.py) and reaches every other
replica through this follower, a background thread per server that, after each wake-up:

1. adopts a new index version when CURRENT names one another process published (``fewshot rebuild``,
   another replica's rebuild): load it, replay the bank's changes after its revision, swap;
2. applies the bank's changes after the revision the served index reflects (``service.catch_up``).

It wakes on PostgreSQL's NOTIFY (bank/feed.py) or every ``sync_poll_seconds``, so a change is
selectable everywhere within about one poll interval, at once on PostgreSQL. Revisions are given out in
commit order (bank/base.py), so reading "everything after the last revision applied" never skips a change.
The same loop lets `fewshot import` running beside a SQLite server reach it.
"""

from __future__ import annotations

import logging
import threading
import time

from ..bank.feed import ChangeWaiter
from ..errors import FewshotError
from .lifecycle import FewshotService

log = logging.getLogger(__name__)


class ChangeFollower:
    def __init__(self, service: FewshotService, poll_seconds: float) -> None:
        self.service = service
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._waiter = ChangeWaiter(service.bank.engine, self._stop)
        self._thread: threading.Thread | None = None
        self._seen_current: str | None = None  # the last CURRENT acted on, adopted or not
        self._last_error: str | None = None
        self.applied_changes = 0  # changes applied from the feed since start, for logs and tests

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fewshot-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread: it finishes the step in progress and returns within one wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the change-feed follower did not stop within %.0fs", timeout)
        self._waiter.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._waiter.wait(self.poll_seconds)
            if self._stop.is_set():
                return
            try:
                self.step()
                self._last_error = None
            except FewshotError as exc:
                self._report(exc.message)
            except Exception as exc:  # the loop must outlive any one failure (a database restart, a full disk)
                self._report(f"{type(exc).__name__}: {exc}")
                log.debug("follower step failed", exc_info=True)

    def _report(self, message: str) -> None:
        # A database outage fails every poll: log it when it starts or changes, not twice a second.
        if message != self._last_error:
            log.warning("following the bank's changes failed (retrying every %.1fs): %s", self.poll_seconds, message)
            self._last_error = message

    def step(self) -> None:
        """One round: adopt a newly published index version, then apply the bank's changes."""
        service = self.service
        if not service.ready:
            return  # still starting: start-up itself loads the newest version and replays the feed
        current = service.store.current_version()
        if current is not None and current != self._seen_current:
            reason = service.adopt(current)
            if reason != service.REBUILD_RUNNING:  # that one is tried again next round
                self._seen_current = current
            if reason is not None and current != service.served().manifest.version:
                log.info("index version %s published elsewhere was not adopted: %s", current, reason)
        revision = service.bank.revision()
        if revision < service.applied_revision:
            # Revisions only rise; a lower one means the bank was replaced (restored from a backup).
            log.warning(
                "the bank is at revision %d, behind the served index (%d): rebuilding",
                revision,
                service.applied_revision,
            )
            service.rebuild()
            return
        started = time.perf_counter()
        applied = service.catch_up()
        if applied:
            self.applied_changes += applied
            log.debug(
                "applied %d change(s) up to bank revision %d in %.1f ms",
                applied,
                service.applied_revision,
                (time.perf_counter() - started) * 1000,
            )
