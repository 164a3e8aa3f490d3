"""Wire types of feedback and of the utility section of /v1/stats."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator
from pydantic_core import PydanticCustomError

# Strict: a JSON true is not an outcome of 1 (integers 0 and 1 still are).
Score = Annotated[float, Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)]
OUTCOME_REFUSAL = 'must be "success", "failure" or a number from 0 to 1'


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selection_id: str = Field(min_length=1, max_length=64, description="From the /v1/select answer.")
    outcome: Literal["success", "failure"] | Score = Field(
        description='"success" (1), "failure" (0), or a score in [0, 1] (a grader\'s, a thumbs-up rate).'
    )
    note: str | None = Field(None, max_length=2000)

    @field_validator("outcome", mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> str | float:
        # Without this a wrong outcome is answered with the first member's complaint ("should be 'success' or
        # 'failure'"), even for 1.5, whose problem is its range.
        try:
            outcome: str | float = handler(value)
        except ValidationError:
            given = json.dumps(value, default=str)[:100]  # as the caller wrote it: true, not True
            raise PydanticCustomError("outcome", f"{OUTCOME_REFUSAL}, not {given}") from None
        return outcome

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
