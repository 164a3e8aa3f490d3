"""How to cut texts into model calls so that padding costs less than the calls it saves.

A transformer pads every text of a batch to the batch's longest, and on a CPU the work grows with the padded
token count, so one 200-token text in a batch of seven 15-token ones makes the batch cost eight 200-token
texts. A model call also has a fixed cost (about what CALL_COST_TOKENS tokens of work cost), which is what
batching short texts saves. Prompts arriving together (micro-batching) and rows of a bank vary that much in
length: short questions sit beside ones at the model's token limit, so fixed batches in arrival order can
embed fewer texts a second than one text per call (encode rates: benchmarks/RESULTS.md, Scale).

So texts are sorted by token count and cut where the cut is cheaper than the padding: an exact dynamic
programme over the sorted lengths, minimising the sum over batches of (call cost + size x longest).
"""

from __future__ import annotations

from collections.abc import Sequence

# The fixed cost of one model call, in tokens of work: a call's overhead over a token's cost for
# all-MiniLM-L6-v2 under ONNX Runtime on a CPU (a model with a costlier token only lowers it).
CALL_COST_TOKENS = 16


def plan_batches(sorted_lengths: Sequence[int], max_batch: int, call_cost: int = CALL_COST_TOKENS) -> list[range]:
    """Consecutive batches (ranges of positions) over lengths sorted ascending, each at most max_batch long,
    with the least total cost of call_cost per batch plus batch size x its longest length."""
    count = len(sorted_lengths)
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    # best[j]: the least cost of embedding the first j texts; cut[j]: where the last batch of that plan starts.
    best = [0.0] * (count + 1)
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        longest = sorted_lengths[end - 1]  # sorted: a batch ending here pads to this length
        best[end] = float("inf")
        for start in range(max(0, end - max_batch), end):
            cost = best[start] + call_cost + (end - start) * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches: list[range] = []
    end = count
    while end > 0:
        batches.append(range(cut[end], end))
        end = cut[end]
    return batches[::-1]
