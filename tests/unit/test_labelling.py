"""The label policy and the step-label rules, on hand-made labels whose outcome is known."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fewshot_service.curation.labels import LabelPolicy, check_label, with_first_wrong_step
from fewshot_service.errors import InvalidInput
from fewshot_service.models import Example, Label, LabelCreate

EXAMPLE = Example(
    id="e1", input="2 + 2?", output="4", steps=["Add 2 and 2.", "Get 4."], status="pending",
    created_at=datetime(2026, 1, 1, tzinfo=UTC), updated_at=datetime(2026, 1, 1, tzinfo=UTC), version=1,
)  # fmt: skip


def labels(*specs: tuple[str, str, int | None]) -> list[Label]:
    return [
        Label(
            id=f"l{n}",
            example_id="e1",
            annotator=who,
            verdict=verdict,
            score=score,  # type: ignore[arg-type]
            created_at=datetime(2026, 1, 1, 0, n, tzinfo=UTC),
        )
        for n, (who, verdict, score) in enumerate(specs)
    ]


@pytest.mark.parametrize(
    ("policy", "given", "expected"),
    [
        (LabelPolicy(), [("ann", "approve", 4)], {"status": "approved", "quality": 4.0}),
        (LabelPolicy(), [("ann", "approve", None)], {"status": "approved", "quality": None}),
        (LabelPolicy(), [("ann", "approve", 2)], {"status": "pending", "quality": 2.0}),  # mean below 3
        (LabelPolicy(), [("ann", "reject", 1)], {"status": "rejected", "quality": 1.0}),
        (LabelPolicy(), [("ann", "needs_fix", 3)], {"status": "pending", "quality": 3.0}),
        (LabelPolicy(), [("a", "approve", 5), ("b", "reject", 2)], {"status": "rejected", "quality": 3.5}),
        (LabelPolicy(approvals_needed=2), [("a", "approve", 5)], {"status": "pending", "quality": 5.0}),
        (
            LabelPolicy(approvals_needed=2),
            [("a", "approve", 5), ("b", "approve", 3)],
            {"status": "approved", "quality": 4.0},
        ),
        # An annotator's latest label replaces their earlier one.
        (LabelPolicy(), [("a", "reject", 1), ("a", "approve", 4)], {"status": "approved", "quality": 4.0}),
        # One rejection is not enough to reject, but a disputed example is not approved either.
        (
            LabelPolicy(rejections_needed=2),
            [("a", "approve", 4), ("b", "reject", 2)],
            {"status": "pending", "quality": 3.0},
        ),
    ],
)
def test_policy(policy: LabelPolicy, given: list[tuple[str, str, int | None]], expected: dict[str, Any]) -> None:
    assert policy.decide(EXAMPLE, labels(*given)) == expected


def test_first_wrong_step_is_derived_from_ratings() -> None:
    label = with_first_wrong_step(LabelCreate(annotator="a", verdict="needs_fix", step_ratings=[1, -1]))
    assert label.first_wrong_step == 1
    check_label(EXAMPLE, label)


@pytest.mark.parametrize(
    ("label", "field"),
    [
        (LabelCreate(annotator="a", verdict="needs_fix", step_ratings=[1, 0, -1]), "step_ratings"),
        (LabelCreate(annotator="a", verdict="needs_fix", first_wrong_step=2), "first_wrong_step"),
        (
            LabelCreate(annotator="a", verdict="needs_fix", step_ratings=[-1, -1], first_wrong_step=1),
            "first_wrong_step",
        ),
    ],
)
def test_step_labels_must_fit_the_steps(label: LabelCreate, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_label(EXAMPLE, label)
    assert caught.value.field == field
