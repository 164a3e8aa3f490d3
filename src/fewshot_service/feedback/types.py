"""Wire types of feedback and of the utility section of /v1/stats."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Strict: a JSON true is not an outcome of 1 (integers 0 and 1 still are).
Score = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selection_id: str = Field(min_length=1, max_length=64, description="From the /v1/select answer.")
    outcome: Literal["success", "failure"] | Score = Field(
        description='"success" (1), "failure" (0), or a score in [0, 1] (a grader\'s, a thumbs-up rate).'
    )
    note: str | None = Field(None, max_length=2000)

    def score(self) -> float:
        if self.outcome == "success":
            return 1.0
        if self.outcome == "failure":
            return 0.0
        return float(self.outcome)


class FeedbackReceipt(BaseModel):
    selection_id: str
    outcome: float = Field(description="The outcome stored, as a score; it replaces any earlier one.")


class FlaggedExample(BaseModel):
    id: str
    version: int
    value: float
    low: float
    high: float
    served: int
    outcomes: int
    reason: str


class UtilityStats(BaseModel):
    selections_kept: int = Field(description="Selections recorded and not yet pruned.")
    with_feedback: int
    examples_with_evidence: int
    confidently_positive: int
    confidently_negative: int
    flagged: list[FlaggedExample] = Field(description="Confidently negative examples, most harmful first.")
    dropped_records: int = Field(description="Selections not recorded since start: the queue was full.")
    refreshed_at: str | None = Field(None, description="When utility was last estimated (ISO 8601).")
