"""Per-example utility learnt from reported outcomes (feedback/utility.py estimates it) as selection sees it:
the latest estimates of the examples' current versions, and the score adjustment they make. Pure apart
from the one reference the board swaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..models import ExampleUtility


@dataclass(frozen=True)
class Utility:
    """How much including an example changes the outcome of the prompts it is served with."""

    value: float  # posterior mean: change in the outcome (0..1 scale) when the example is in the prompt
    low: float  # the interval the selector and the review queue trust (feedback/utility.py: INTERVAL_Z)
    high: float
    served: int  # times this version was served among the kept selections
    outcomes: int  # of those, how many have feedback
    observed: float  # mean outcome of the selections that served it
    expected: float  # mean outcome expected for those selections' neighbourhoods
    since: datetime | None = None  # when the first outcome of this version arrived

    @property
    def confidently_negative(self) -> bool:
        return self.high < 0

    @property
    def confidently_positive(self) -> bool:
        return self.low > 0

    def reason(self) -> str:
        return (
            f"served {self.served} times; outcomes {self.observed:.2f} against {self.expected:.2f} expected for its "
            f"neighbourhood (utility {self.value:+.2f}, interval {self.low:+.2f} to {self.high:+.2f})"
        )


class UtilityBoard:
    """The utilities of the examples' current versions, replaced as a whole by each refresh."""

    def __init__(self) -> None:
        # id -> (version, bank revision when checked, utility)
        self._table: Mapping[str, tuple[int, int, Utility]] = {}
        self._movers = 0

    def replace(self, table: Mapping[str, tuple[int, int, Utility]]) -> None:
        self._table = dict(table)
        self._movers = sum(u.confidently_negative or u.confidently_positive for _, _, u in self._table.values())

    @property
    def active(self) -> bool:
        """Whether any example has a utility that moves it."""
        return self._movers > 0

    def of(self, example_id: str, version: int) -> Utility | None:
        """The utility of this version of the example; a new version (a curator's fix) has none yet."""
        entry = self._table.get(example_id)
        return entry[2] if entry is not None and entry[0] == version else None

    def version_of(self, example_id: str) -> int:
        """The version the example's utility belongs to (0 when it has none)."""
        entry = self._table.get(example_id)
        return entry[0] if entry is not None else 0

    def flagged(self) -> list[tuple[str, Utility]]:
        """Examples whose utility is confidently negative, most harmful first."""
        found = [(i, u) for i, (_, _, u) in self._table.items() if u.confidently_negative]
        return sorted(found, key=lambda item: item[1].high)

    def all(self) -> list[tuple[str, Utility]]:
        return [(i, u) for i, (_, _, u) in self._table.items()]

    def for_pool(self, ids: Sequence[str], revisions: Sequence[int]) -> np.ndarray:
        """The value of each candidate whose interval excludes 0, else 0. An example written since the refresh
        (its revision moved on) counts as unknown until the next refresh checks its version."""
        table = self._table
        values = np.zeros(len(ids), dtype=np.float64)
        if not self._movers:
            return values
        for n, (example_id, revision) in enumerate(zip(ids, revisions, strict=True)):
            entry = table.get(example_id)
            if entry is not None and entry[1] == revision:
                utility = entry[2]
                if utility.confidently_negative or utility.confidently_positive:
                    values[n] = utility.value
        return values


def adjust_scores(score: np.ndarray, confident: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(score moved by weight × each candidate's confident utility, how far each moved)."""
    moved = weight * confident
    return score + moved, moved


def explain_move(reason: str, moved: float) -> str:
    """The pick's reason, saying when utility moved it."""
    if moved == 0:
        return reason
    direction = "promoted" if moved > 0 else "demoted"
    return f"{reason}; {direction} by its measured utility ({moved:+.3f})"


def public_utility(utility: Utility | None) -> ExampleUtility | None:
    """The utility as the example's public field shows it."""
    if utility is None:
        return None
    return ExampleUtility(
        value=utility.value, low=utility.low, high=utility.high, served=utility.served, outcomes=utility.outcomes
    )
