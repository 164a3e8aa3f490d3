"""A reader never catches the index between two versions of an example."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace

import numpy as np

from fewshot_service.index import VectorIndex
from fewshot_service.models import SelectFilters

from .test_index import DIM, rows

EVERYTHING = SelectFilters(statuses=["approved", "pending", "rejected"])


def test_a_search_during_repeated_upserts_always_finds_the_example() -> None:
    data = rows(200)
    index = VectorIndex.build(DIM, data)
    edited = data[7]
    # Two versions of one example with different vectors: every upsert swaps its slot.
    versions = [edited, replace(edited, embedding=data[8].embedding, revision=1)]
    stop = threading.Event()
    upserts = 0

    def edit() -> None:
        nonlocal upserts
        while not stop.is_set():
            index.upsert([versions[upserts % 2]])
            upserts += 1
            time.sleep(0)  # a reader may take the lock between two upserts, not only inside one

    writer = threading.Thread(target=edit)
    # Threads hand over the interpreter far more often than by default, so a gap inside an upsert is found.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    writer.start()
    searches, missed = 0, []
    try:
        started = time.monotonic()  # at least 2 s, and on a loaded machine until both sides really ran
        while time.monotonic() - started < 30 and (time.monotonic() - started < 2 or searches < 200 or upserts < 50):
            query = versions[searches % 2].embedding
            # All 200 examples are asked for: the edited one is among them unless neither version is live.
            found = index.ids(index.search(query, len(data), EVERYTHING).slots)
            pooled = index.pool(query, len(data), EVERYTHING).ids
            if edited.id not in found or edited.id not in pooled:
                missed.append(searches)
            searches += 1
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(switch_interval)
    assert upserts > 50 and searches > 50  # the two really interleaved
    assert missed == [], f"{len(missed)} of {searches} searches saw neither version"
    assert index.size == len(data)  # one live slot per example, however many swaps


def test_one_pool_read_returns_the_slots_attributes_ids_and_revisions_together() -> None:
    data = rows(50)
    index = VectorIndex.build(DIM, data)
    query = data[3].embedding
    pool = index.pool(query, 5, EVERYTHING, below=0.999, headroom=2)
    assert "ex3" not in pool.ids  # at or above `below`: left out, and the pool still holds 5
    assert len(pool.ids) == 5 and pool.ids == index.ids(pool.slots)
    np.testing.assert_allclose(pool.relevance, pool.vectors @ query, rtol=1e-5)
    topics, difficulties = index.attributes(pool.slots)
    assert pool.topics == topics and np.array_equal(pool.difficulties, difficulties, equal_nan=True)
    assert list(pool.revisions) == list(index.revisions(pool.slots))
    sampled = index.pool(query, 50, EVERYTHING, below=0.999, rng=np.random.default_rng(0))
    assert sorted(sampled.ids) == sorted(row.id for row in data if row.id != "ex3")
