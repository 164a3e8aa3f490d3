"""Feedback intake, utility refresh and what the review queue and stats learn from it.

A feedback for a selection this process has queued but not written yet flushes the queue first; one for
a selection another replica may not have written yet (its batch is still in flight) is retried for up to
feedback_wait_seconds before it is refused. Utility is re-estimated from the bank on a timer, so every
replica converges on the same figures, and on demand (refresh()).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime

from ..bank.sql import SqlBank
from ..errors import FewshotError, NotFound
from ..models import ExampleUtility
from ..selection.utility import UtilityBoard, public_utility
from ..settings import Settings
from .recorder import SelectionRecorder, issued_at
from .types import FeedbackCreate, FeedbackReceipt, FlaggedExample, UtilityStats
from .utility import Observation, estimate, neighbourhood_of

log = logging.getLogger(__name__)
RETRY_SECONDS = 0.05
# What recorder.py issues (new_selection_id()).
SELECTION_ID = re.compile(r"[A-Za-z0-9_-]{32}")
# How long after its issue a selection may still be on its way to the bank from another replica (its batch
# lingering or retried, the replicas' clocks apart); an unknown id issued further from now is not waited for.
IN_FLIGHT_SECONDS = 30.0


class FeedbackService:
    def __init__(
        self,
        bank: SqlBank,
        board: UtilityBoard,
        recorder: SelectionRecorder,
        settings: Settings,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """ready: whether the bank is open and migrated (the timer waits for it)."""
        self.bank = bank
        self._ready = ready
        self.board = board
        self.recorder = recorder
        self.settings = settings
        self.refreshed_at: datetime | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- intake ---------------------------------------------------------------------------------
    def submit(self, key_name: str, body: FeedbackCreate) -> FeedbackReceipt:
        """Store the outcome of a selection made by this key; 404 for any other (unknown, expired, not its own)."""
        owner = self._owner(body.selection_id)
        # Another key's selection answers exactly as an unknown one: ids cannot be probed.
        if owner != key_name or not self.bank.put_feedback(body.selection_id, body.score(), body.note):
            days = self.settings.selection_retention_days
            raise NotFound(
                f"no selection {body.selection_id!r} made with this key: unknown, made with another key, or older "
                f"than the {days:g}-day retention",
                field="selection_id",
            )
        return FeedbackReceipt(selection_id=body.selection_id, outcome=body.score())

    def _owner(self, selection_id: str) -> str | None:
        if not SELECTION_ID.fullmatch(selection_id):
            return None  # never issued here: nothing to wait for
        if self.recorder.is_pending(selection_id):
            self.recorder.flush()
        owner = self.bank.selection_owner(selection_id)
        issued = issued_at(selection_id)
        if owner is not None or issued is None or abs(issued - time.time()) > IN_FLIGHT_SECONDS:
            # Expired, long unknown or never issued: waiting would only hold one of the bank's request slots
            # (an application retrying stale ids at a few a second kept curators' requests queueing).
            return owner
        deadline = time.monotonic() + self.settings.feedback_wait_seconds
        while owner is None and time.monotonic() < deadline:
            time.sleep(RETRY_SECONDS)  # another replica's batch may still be on its way to the bank
            owner = self.bank.selection_owner(selection_id)
        return owner

    # -- estimation -----------------------------------------------------------------------------
    def refresh(self) -> int:
        """Re-estimate every served example's utility from the kept feedback; how many have evidence."""
        with self._refresh_lock:
            observations = [
                Observation(o.outcome, neighbourhood_of(o.estimated_topic, o.difficulty_target), o.served, o.created_at)
                for o in self.bank.iter_outcomes()
            ]
            utilities = estimate(observations, self.bank.served_counts())
            current = self.bank.current_versions(sorted({example_id for example_id, _ in utilities}))
            # Only the current version's evidence counts: a fix (a new version) starts from nothing.
            self.board.replace(
                {
                    example_id: (version, revision, utilities[(example_id, version)])
                    for example_id, (version, revision) in current.items()
                    if (example_id, version) in utilities
                }
            )
            self.refreshed_at = datetime.now().astimezone()
            return len(utilities)

    def utility_of(self, example_id: str, version: int) -> ExampleUtility | None:
        return public_utility(self.board.of(example_id, version))

    def stats(self) -> UtilityStats:
        kept, rated = self.bank.feedback_counts()
        everything = self.board.all()
        flagged = [
            FlaggedExample(id=i, version=v, value=u.value, low=u.low, high=u.high, served=u.served,
                           outcomes=u.outcomes, reason=u.reason())
            for i, u in self.board.flagged()
            for v in [self.board.version_of(i)]
        ]  # fmt: skip
        return UtilityStats(
            selections_kept=kept,
            with_feedback=rated,
            examples_with_evidence=len(everything),
            confidently_positive=sum(u.confidently_positive for _, u in everything),
            confidently_negative=len(flagged),
            flagged=flagged,
            dropped_records=self.recorder.dropped + self.recorder.failed,
            refreshed_at=self.refreshed_at.isoformat() if self.refreshed_at else None,
        )

    # -- the timer ------------------------------------------------------------------------------
    def start(self) -> None:
        self.recorder.start()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fewshot-utility", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.recorder.stop()

    def _run(self) -> None:
        while not self._ready():  # the service migrates the bank as it starts
            if self._stop.wait(0.5):
                return
        while True:  # at once first: a restarted server has its utilities before the first interval ends
            try:
                self.refresh()
            except FewshotError as exc:
                log.warning("re-estimating utility failed: %s", exc.message)
            if self._stop.wait(self.settings.utility_refresh_seconds):
                return
