"""What an expansion run is asked (ExpandRequest) and what it answers (ExpansionReport)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import ExampleCreate, IntegerOrNull, NumberOrNull, Topic

MAX_EXPAND_N = 1000
Stopped = Literal["done", "max_calls", "llm_error", "interrupted"]

# The hook for the quality model (issue 6): each candidate's predicted probability of being good (0-1, as
# the model stores it in predicted_quality), or None when no model is trained yet, in which case nothing
# is filtered on predicted quality.
QualityScorer = Callable[[Sequence[ExampleCreate]], list[float] | None]


class ExpandRequest(BaseModel):
    """One cell and how many new examples (n), or --fill-gaps: every cell up to its target."""

    model_config = ConfigDict(extra="forbid")

    topic: Topic | None = Field(None, description="The cell's topic; required unless fill_gaps (then it narrows).")
    difficulty: IntegerOrNull = Field(None, ge=1, le=5, description="The cell's difficulty; required unless fill_gaps.")
    n: IntegerOrNull = Field(
        None, ge=1, le=MAX_EXPAND_N, description="New examples to store; with fill_gaps, a cap on the total."
    )
    temperature: NumberOrNull = Field(None, ge=0.0, le=2.0, description="Sampling temperature; default the setting.")
    fill_gaps: bool = Field(False, description="Generate for every cell below its target until it reaches it.")
    target: IntegerOrNull = Field(
        None, ge=1, le=100_000, description="Approved+pending examples per cell (fill_gaps); default the setting."
    )
    max_calls: IntegerOrNull = Field(
        None, ge=1, le=10_000, description="Most LLM calls; default 3x what the request needs, within the setting."
    )


class TokenCounts(BaseModel):
    prompt: int = 0
    completion: int = 0
    total: int = 0


class CellReport(BaseModel):
    topic: str
    difficulty: int
    had: int = Field(description="Approved+pending examples in the cell before the run.")
    requested: int = Field(description="New examples the run set out to store in the cell.")
    stored: int


class ExpansionReport(BaseModel):
    run_id: str
    model: str
    template_id: str
    template_version: int
    temperature: float
    requested: int = Field(description="New examples the run set out to store.")
    generated: int = Field(description="Examples the LLM wrote (before filtering).")
    stored: int = Field(description="Examples stored as source=llm, status=pending.")
    stored_ids: list[str] = Field(default_factory=list)
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="Why examples were not stored: missing_fields, invalid_fields, too_short, too_long, "
        "duplicate_exact, duplicate_semantic, low_quality, surplus (more than the cell needed); "
        "malformed_answer counts whole answers that could not be read.",
    )
    calls: int = Field(0, description="LLM calls made (each may have been retried).")
    retries: int = 0
    failed_calls: int = Field(0, description="Calls that failed even after their retries.")
    tokens: TokenCounts = Field(default_factory=TokenCounts)
    cells: list[CellReport] = Field(default_factory=list)
    stopped: Stopped = Field(
        "done", description="done (every cell got what it needed), max_calls, llm_error or interrupted."
    )
    error: str | None = None
    took_s: float = 0.0
