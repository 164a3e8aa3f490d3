"""Prompts of concurrent requests embedded together, in one model call.

On a CPU a model call has a fixed cost besides the per-text work, and two calls at once only fight over
the same cores; a batch of eight short prompts costs far less than eight calls. There is no batching
thread and no timer: the first request to arrive while a lane is free embeds its own prompt at once (a
lone request waits for nothing); prompts arriving while every lane is busy queue up, and when a call ends its
lane passes to the oldest queued prompt's thread, which takes the queue from its head as the next batch (first
come, first served: under sustained load no prompt is overtaken). Each waiting thread is woken once, by the
batch that embedded its prompt or by the lane handed to it, never by every batch that ends. The embedder cuts
a batch into model calls of similar lengths (padding.py), so a long prompt does not make the short ones beside
it pay for its padding.

Lanes: how many batches may run at once. Two calls on 2 cores keep both busy where one call's small matrices
leave one idle part of the time (figures in benchmarks/RESULTS.md, "Scale").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


# eq=False: items are found in the queue by identity; two requests for the same prompt are distinct items.
@dataclass(eq=False)
class _Pending:
    text: str
    # Set when this item's vector (or error) is ready, or when its thread is to lead the next batch: each
    # waiting thread has its own, so a finished batch wakes only the threads it concerns.
    wake: threading.Event = field(default_factory=threading.Event)
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
        self._queue: list[_Pending] = []  # waiting for a lane, oldest first
        self._running = 0  # lanes in use: batches being embedded, or handed to a thread about to lead one
        self._lock = threading.Lock()
        self.calls = 0  # model calls made, for tests and metrics
        self.texts = 0

    def embed_one(self, text: str) -> np.ndarray:
        item = _Pending(text)
        with self._lock:
            leads = self._running < self.lanes
            if leads:
                self._running += 1
            else:
                self._queue.append(item)
        if not leads:
            # Woken once: either the batch holding this item is done, or a lane was handed to it.
            item.wake.wait()
            if item.done:
                return self._result(item)
        # This thread holds a lane: its batch is its own text and whatever queued meanwhile.
        with self._lock:
            batch = [item, *self._queue[: self.max_batch - 1]]
            del self._queue[: self.max_batch - 1]
        try:
            vectors = self._embed([p.text for p in batch])
            for pending, vector in zip(batch, vectors, strict=True):
                pending.vector = vector
        except BaseException as exc:  # every waiter of the batch gets the failure, not a hang
            for pending in batch:
                pending.error = exc
        with self._lock:
            self.calls += 1
            self.texts += len(batch)
            # The lane passes straight to the oldest waiting text's thread, if any, else it is freed.
            successor = self._queue.pop(0) if self._queue else None
            if successor is None:
                self._running -= 1
        for pending in batch[1:]:
            pending.done = True
            pending.wake.set()
        if successor is not None:
            successor.wake.set()
        return self._result(item)

    @staticmethod
    def _result(item: _Pending) -> np.ndarray:
        if item.error is not None:
            raise item.error
        assert item.vector is not None
        return item.vector
