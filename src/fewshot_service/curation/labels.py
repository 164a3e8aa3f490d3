"""How curator labels become an example's status and quality, and what makes a label valid.

Policy (configurable through settings):
- each annotator's latest label counts; earlier ones stay in the history;
- quality is the mean score of those labels (null while none has a score);
- rejected when rejections >= ``label_rejections_needed`` and rejections >= approvals (a disputed
  example is not served);
- approved when approvals >= ``label_approvals_needed``, approvals > rejections, and the mean score is at
  least ``label_min_mean_score`` (or no label has a score);
- otherwise pending (a needs_fix verdict holds an example back until someone approves it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Any

from ..errors import InvalidInput
from ..models import Example, Label, LabelCreate


@dataclass(frozen=True)
class LabelPolicy:
    approvals_needed: int = 1
    min_mean_score: float = 3.0
    rejections_needed: int = 1

    def decide(self, example: Example, labels: list[Label]) -> dict[str, Any]:
        """The status and quality the labels give the example."""
        latest: dict[str, Label] = {}
        for label in labels:  # oldest first
            latest[label.annotator] = label
        current = list(latest.values())
        scores = [label.score for label in current if label.score is not None]
        quality = round(fmean(scores), 3) if scores else None
        approvals = sum(label.verdict == "approve" for label in current)
        rejections = sum(label.verdict == "reject" for label in current)
        if rejections >= self.rejections_needed and rejections >= approvals:
            status = "rejected"
        elif (
            approvals >= self.approvals_needed
            and approvals > rejections
            and (quality is None or quality >= self.min_mean_score)
        ):
            status = "approved"
        else:
            status = "pending"
        return {"status": status, "quality": quality}


def with_first_wrong_step(label: LabelCreate) -> LabelCreate:
    """Fill first_wrong_step from the step ratings when the annotator gave only the ratings."""
    if label.step_ratings is not None and label.first_wrong_step is None and -1 in label.step_ratings:
        return label.model_copy(update={"first_wrong_step": label.step_ratings.index(-1)})
    return label


def check_label(example: Example, label: LabelCreate) -> None:
    """Step labels must fit the example's worked solution (process-supervision style)."""
    steps = example.steps or []
    if label.step_ratings is not None and len(label.step_ratings) != len(steps):
        raise InvalidInput(
            f"step_ratings has {len(label.step_ratings)} rating(s) but the example has {len(steps)} step(s)",
            field="step_ratings",
        )
    if label.first_wrong_step is not None:
        if label.first_wrong_step >= len(steps):
            raise InvalidInput(
                f"first_wrong_step {label.first_wrong_step} is beyond the example's {len(steps)} step(s)",
                field="first_wrong_step",
            )
        ratings = label.step_ratings
        if ratings is not None and (ratings[label.first_wrong_step] != -1 or -1 in ratings[: label.first_wrong_step]):
            raise InvalidInput(
                "first_wrong_step must be the first step rated -1 in step_ratings", field="first_wrong_step"
            )
