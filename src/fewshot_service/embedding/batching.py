"""Prompts of concurrent requests embedded together, in one model call.

On a CPU a model call has a fixed cost besides the per-text work, and two calls at once only fight over
the same cores; a batch of eight short prompts costs far less than eight calls. There is no batching
thread and no timer: the first request to arrive while a lane is free embeds its own prompt at once (a
lone request waits for nothing); prompts arriving while every lane is busy queue up, and when a call ends one
of their threads takes everything queued as the next batch. The embedder cuts a batch into model calls of
similar lengths (padding.py), so a long prompt does not make the short ones beside it pay for its padding.

Lanes: how many batches may run at once. Two calls on 2 cores keep both busy where one call's small matrices
leave one idle part of the time (figures in benchmarks/RESULTS.md, "Scale").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


# eq=False: items are found in the queue by identity; two requests for the same prompt are distinct items.
@dataclass(eq=False)
class _Pending:
    text: str
    taken: bool = False  # in a batch that is running
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class MicroBatcher:
    """Embeds one text per call, batching the calls that overlap in time."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], max_batch: int = 64, lanes: int = 1) -> None:
        if max_batch < 1 or lanes < 1:
            raise ValueError("max_batch and lanes must be at least 1")
        self._embed = embed
        self.max_batch = max_batch
        self.lanes = lanes
        self._queue: list[_Pending] = []
        self._running = 0  # batches being embedded
        self._changed = threading.Condition()
        self.calls = 0  # model calls made, for tests and metrics
        self.texts = 0

    def embed_one(self, text: str) -> np.ndarray:
        item = _Pending(text)
        with self._changed:
            self._queue.append(item)
            while not item.done and (item.taken or self._running >= self.lanes):
                self._changed.wait()
            if item.done:
                return self._result(item)
            # A lane is free and this text is still queued: lead the next batch, which includes it.
            self._running += 1
            self._queue.remove(item)
            batch = [item, *self._queue[: self.max_batch - 1]]
            del self._queue[: self.max_batch - 1]
            for pending in batch:
                pending.taken = True
        try:
            vectors = self._embed([p.text for p in batch])
            for pending, vector in zip(batch, vectors, strict=True):
                pending.vector = vector
        except BaseException as exc:  # every waiter of the batch gets the failure, not a hang
            for pending in batch:
                pending.error = exc
        with self._changed:
            for pending in batch:
                pending.done = True
            self.calls += 1
            self.texts += len(batch)
            self._running -= 1
            self._changed.notify_all()
        return self._result(item)

    @staticmethod
    def _result(item: _Pending) -> np.ndarray:
        if item.error is not None:
            raise item.error
        assert item.vector is not None
        return item.vector
