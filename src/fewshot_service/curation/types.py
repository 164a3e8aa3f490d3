"""Domain types of curation: edits, batches, duplicates, quality labels, preferences, history, review."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ..models import (
    MAX_INPUT_CHARS,
    MAX_STEPS,
    MAX_TAGS,
    VISIBLE,
    Choice,
    Example,
    ExampleCreate,
    ExampleQuery,
    HistoryEntry,
    IntegerOrNull,
    Label,
    Preference,
    PreferenceCreate,
    PreferenceLabel,
    PreferenceLabelCreate,
    Status,
    Step,
    Tags,
    Topic,
    check_metadata,
    require_visible,
)

# Stored and returned by the bank, these live in models (the bank imports nothing from curation); curation
# and its users keep importing them from here.
__all__ = [
    "Choice",
    "ExampleQuery",
    "HistoryEntry",
    "Preference",
    "PreferenceCreate",
    "PreferenceLabel",
    "PreferenceLabelCreate",
]

OnDuplicate = Literal["reject", "skip", "keep"]
EditOnDuplicate = Literal["reject", "keep"]  # an edit has nothing to skip

MAX_BATCH = 500


class ExamplePageQuery(ExampleQuery):
    """Listing filters plus the page to return."""

    cursor: str | None = Field(None, max_length=64, description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=500)


class ExampleBatch(BaseModel):
    """A batch to add; more than MAX_BATCH examples is refused with 413 (checked by the route)."""

    model_config = ConfigDict(extra="forbid")

    examples: list[ExampleCreate] = Field(min_length=1)


def _never_null(schema: dict[str, Any]) -> None:
    """The schema of a field that may be left out but never sent as null: its non-null member alone."""
    members = [member for member in schema.pop("anyOf", []) if member.get("type") != "null"]
    if len(members) == 1:
        schema.update(members[0])
    schema.pop("default", None)


def _never_null_nor_blank(schema: dict[str, Any]) -> None:
    _never_null(schema)
    schema["pattern"] = VISIBLE


# Merge-patch (RFC 7396) semantics for PATCH: a field left out keeps its value, null clears a field that may
# be empty (external_id, steps, topic, difficulty: null; tags: []; metadata: {}), and null for a field every
# example must have (input, output, source, status) is refused with 422 naming it. The schema states the same:
# those four are never null there.
REQUIRED_ON_PATCH = ("input", "output", "source", "status")


class ExampleUpdate(BaseModel):
    """A partial edit; `version` (or an If-Match header) guards against lost updates."""

    model_config = ConfigDict(extra="forbid")

    version: IntegerOrNull = Field(None, ge=1, description="The version the edit is based on; 409 when stale.")
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    input: str | None = Field(None, min_length=1, max_length=MAX_INPUT_CHARS, json_schema_extra=_never_null_nor_blank)
    output: str | None = Field(None, max_length=MAX_INPUT_CHARS, json_schema_extra=_never_null)
    steps: list[Step] | None = Field(None, max_length=MAX_STEPS)
    topic: Topic | None = None
    difficulty: IntegerOrNull = Field(None, ge=1, le=5)
    tags: Tags | None = Field(None, max_length=MAX_TAGS, description="null clears them (as []); each tag once.")
    source: Literal["curated", "llm", "imported"] | None = Field(None, json_schema_extra=_never_null)
    status: Status | None = Field(None, json_schema_extra=_never_null)
    metadata: dict[str, Any] | None = Field(None, description="null clears it (as {}).")

    @field_validator(*REQUIRED_ON_PATCH, mode="before")
    @classmethod
    def _required_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null: every example has one (leave the field out to keep its value)")
        return value

    _input_visible = field_validator("input")(require_visible)

    @field_validator("tags")
    @classmethod
    def _null_tags_clear(cls, value: list[str] | None) -> list[str]:
        return [] if value is None else value

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, Any] | None) -> dict[str, Any]:
        return {} if value is None else check_metadata(value)

    def changes(self) -> dict[str, Any]:
        """The fields the caller actually sent (null included, for clearing), without the version."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k != "version"}


class Duplicate(BaseModel):
    position: int = Field(description="Index of the submitted example in the request (0 for a single one).")
    duplicate_of: str = Field(description="Id of the stored example, or 'batch:N' for an earlier one in the batch.")
    similarity: float
    kind: Literal["exact", "semantic"]


class CreateResult(BaseModel):
    examples: list[Example]
    duplicates: list[Duplicate] = Field(default_factory=list)
    skipped: list[int] = Field(default_factory=list, description="Positions not stored (on_duplicate=skip).")


class LabelResult(BaseModel):
    label: Label
    example: Example


class ExamplePage(BaseModel):
    examples: list[Example]
    next_cursor: str | None = None


class ExampleRecord(Example):
    """An example as exported: the stored fields and its labels, which an import restores."""

    labels: list[Label] = Field(default_factory=list)


class ReviewProgress(BaseModel):
    annotator: str
    since: datetime
    labelled: int = Field(description="Labels this annotator gave since `since` that still count (not withdrawn).")


class ReviewItem(BaseModel):
    example: Example
    reason: Literal["pending_llm", "pending", "disagreement", "negative_utility"]
    labels: list[Label] | None = Field(description="Other annotators' labels; null in blind mode.")
    lease_expires_at: datetime
    detail: str | None = Field(None, description="negative_utility: what the outcomes say, in a sentence.")
