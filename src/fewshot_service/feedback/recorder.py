"""SelectionRecorder: every /v1/select answer is recorded off the request thread.

The request thread only builds a small record and puts it on a bounded queue; a background thread writes
whatever has queued up in one transaction, waiting up to LINGER_SECONDS after the first record so that a
busy server commits a few times a second instead of once per select (each commit takes CPU the next
request's embedding needs). Feedback on a selection still queued flushes it at once. When the queue is
full the selection is dropped and counted, never waited for: the answer matters more than its record. The
same thread prunes selections older than the retention on a timer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import queue
import secrets
import threading
import time
from datetime import timedelta

from ..bank.base import now
from ..bank.feedback_sql import SelectionRecord
from ..bank.sql import SqlBank
from ..errors import FewshotError
from ..models import SelectResponse, normalise_text
from ..settings import Settings

log = logging.getLogger(__name__)
BATCH = 500
LINGER_SECONDS = 0.25
PRUNE_EVERY_SECONDS = 600.0
WRITE_ATTEMPTS = 3


def new_selection_id() -> str:
    """32 url-safe characters: the issue time in milliseconds (6 bytes), then 18 random bytes (unguessable).
    The time lets feedback on an id that cannot be on its way to the bank any more be refused without waiting."""
    stamp = int(time.time() * 1000).to_bytes(6, "big")
    return base64.urlsafe_b64encode(stamp).decode() + secrets.token_urlsafe(18)


def issued_at(selection_id: str) -> float | None:
    """When new_selection_id() made this id (seconds since the epoch); None when it cannot have made it."""
    try:
        stamp = base64.urlsafe_b64decode(selection_id[:8].encode())
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(stamp, "big") / 1000 if len(stamp) == 6 else None


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(normalise_text(prompt).encode()).hexdigest()


class SelectionRecorder:
    def __init__(self, bank: SqlBank, settings: Settings) -> None:
        self.bank = bank
        self.retention = timedelta(days=settings.selection_retention_days)
        self.keep_prompts = settings.log_prompts
        self._queue: queue.Queue[SelectionRecord] = queue.Queue(maxsize=settings.selection_queue_size)
        self._done = threading.Condition()
        self._enqueued = 0  # ticket of the last record queued
        self._finished = 0  # records written (or given up on), in queue order
        self._pending: set[str] = set()  # ids queued in this process and not yet written
        self.dropped = 0
        self.failed = 0
        self._stop = threading.Event()
        self._hurry = threading.Event()  # write now: a flush waits, the batch is full, or the recorder stops
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0

    # -- the request thread ---------------------------------------------------------------------
    def record(self, key_name: str, prompt: str, response: SelectResponse) -> str | None:
        """Queue the selection; its id, or None when the queue was full and it was dropped."""
        record = SelectionRecord(
            id=new_selection_id(),
            key_name=key_name,
            created_at=now(),
            strategy=response.strategy,
            prompt_hash=prompt_hash(prompt),
            prompt=prompt if self.keep_prompts else None,
            index_version=response.index_version,
            estimated_topic=response.estimated_topic,
            difficulty_target=response.difficulty_target,
            served=tuple((e.id, e.version) for e in response.examples),
        )
        with self._done:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.dropped += 1
                return None
            self._enqueued += 1
            self._pending.add(record.id)
        if self._queue.qsize() >= BATCH:
            self._hurry.set()
        return record.id

    def is_pending(self, selection_id: str) -> bool:
        """Whether this process queued the selection and has not written it yet."""
        return selection_id in self._pending

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every selection queued before the call is written; False on timeout."""
        with self._done:
            ticket = self._enqueued
            self._hurry.set()
            if self._thread is None or not self._thread.is_alive():
                self._write_queued()  # not started (a CLI or test caller): write on this thread
            return self._done.wait_for(lambda: self._finished >= ticket, timeout)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- the writer thread ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fewshot-selections", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        self._hurry.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._done:
            self._write_queued()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                self._prune_when_due()
                continue
            self._hurry.wait(LINGER_SECONDS)
            self._hurry.clear()  # before the drain: a flush that sets it later finds its record in the next batch
            self._write([first, *self._drain(BATCH - 1)])
            self._prune_when_due()

    def _drain(self, most: int) -> list[SelectionRecord]:
        batch: list[SelectionRecord] = []
        while len(batch) < most:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_queued(self) -> None:
        while batch := self._drain(BATCH):
            self._write(batch)

    def _write(self, batch: list[SelectionRecord]) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self.bank.record_selections(batch)
                break
            except FewshotError as exc:
                if attempt + 1 == WRITE_ATTEMPTS:
                    self.failed += len(batch)
                    log.error("dropped %d selection record(s): %s", len(batch), exc.message)
                else:
                    time.sleep(0.5 * (attempt + 1))
        with self._done:
            self._finished += len(batch)
            self._pending.difference_update(r.id for r in batch)
            self._done.notify_all()

    def _prune_when_due(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        self.prune()

    def prune(self) -> int:
        """Delete selections past the retention; how many."""
        try:
            removed = self.bank.prune_selections(now() - self.retention)
        except FewshotError as exc:
            log.warning("pruning old selections failed: %s", exc.message)
            return 0
        if removed:
            log.info("pruned %d selection(s) older than %s", removed, self.retention)
        return removed
