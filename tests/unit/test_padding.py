"""Cutting length-sorted texts into model calls: the plan with the least padding plus per-call cost."""

from __future__ import annotations

import itertools
import random

import pytest

from fewshot_service.embedding.padding import plan_batches


def cost(lengths: list[int], batches: list[range], call_cost: int) -> int:
    return sum(call_cost + len(batch) * lengths[batch.stop - 1] for batch in batches)


def every_plan(count: int, max_batch: int) -> list[list[range]]:
    """All ways to cut positions 0..count-1 into consecutive batches of at most max_batch."""
    if count == 0:
        return [[]]
    plans = []
    for cuts in itertools.product([False, True], repeat=max(count - 1, 0)):
        starts = [0, *[i + 1 for i, cut in enumerate(cuts) if cut], count]
        plan = [range(a, b) for a, b in itertools.pairwise(starts)]
        if all(len(batch) <= max_batch for batch in plan):
            plans.append(plan)
    return plans


def test_one_long_text_is_not_batched_with_short_ones() -> None:
    lengths = [12, 13, 13, 14, 15, 15, 16, 250]
    assert plan_batches(lengths, max_batch=32, call_cost=16) == [range(0, 7), range(7, 8)]


def test_texts_of_one_length_fill_batches_up_to_the_limit() -> None:
    plan = plan_batches([20] * 10, max_batch=4, call_cost=16)
    assert len(plan) == 3 and all(len(batch) <= 4 for batch in plan)  # the fewest calls the limit allows


def test_without_a_call_cost_every_distinct_length_gets_its_own_call() -> None:
    plan = plan_batches([5, 5, 9, 30, 30, 30], max_batch=64, call_cost=0)
    assert plan == [range(0, 2), range(2, 3), range(3, 6)]


def test_the_plan_covers_every_text_once_in_order_and_is_the_cheapest() -> None:
    generator = random.Random(7)
    for _ in range(60):
        count = generator.randint(0, 9)
        lengths = sorted(generator.choice([3, 8, 15, 15, 40, 120, 256]) for _ in range(count))
        max_batch = generator.randint(1, 5)
        call_cost = generator.choice([0, 4, 16, 64])
        plan = plan_batches(lengths, max_batch, call_cost)
        assert [i for batch in plan for i in batch] == list(range(count))
        assert all(1 <= len(batch) <= max_batch for batch in plan)
        cheapest = min(cost(lengths, p, call_cost) for p in every_plan(count, max_batch))
        assert cost(lengths, plan, call_cost) == cheapest


def test_a_batch_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_batches([1, 2], max_batch=0)
