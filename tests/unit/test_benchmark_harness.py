"""The benchmarks' one percentile: every script's p50/p99 means the same thing."""

from __future__ import annotations

import math
import sys

import pytest

from .. import helpers

sys.path.insert(0, str(helpers.REPO / "benchmarks"))  # the scripts import the harness by name, as here
from harness import percentile


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # nearest-rank would say 2 or 3
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert percentile([1.0, float("nan"), 3.0], 50) == 2.0
    assert math.isnan(percentile([], 50))
