"""Tables of the example bank, in SQLAlchemy Core so SQLite and PostgreSQL share one schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC. SQLite keeps a datetime as its wall-clock text and drops the offset, so a
    caller's 12:00+08:00 (a restored export, a progress "since") was stored or compared as 12:00 UTC;
    converting every bound value first makes both banks hold and compare the same instant."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value


examples = Table(
    "examples",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("external_id", String(200), unique=True, nullable=True),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=False, default=""),
    Column("steps", JSON, nullable=True),
    Column("topic", String(100), nullable=True),
    Column("difficulty", Integer, nullable=True),
    Column("tags", JSON, nullable=False),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("quality", Float, nullable=True),
    # "metadata" is reserved on SQLAlchemy tables, hence the column name.
    Column("meta", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
    # The bank revision of the last write to this row: what a change feed reads.
    Column("revision", Integer, nullable=False),
    # The embedding of `input` under `embedding_model` (float32 bytes), so rebuilds never re-embed.
    Column("embedding", LargeBinary, nullable=True),
    Column("embedding_model", String(300), nullable=True),
    Column("embedding_dim", Integer, nullable=True),
    # sha256 of the normalised input: exact duplicates are found by index, not by scanning.
    Column("input_hash", String(64), nullable=False),
    # Deleted examples stay as tombstones so a label on them answers 409 (not 404) and replicas
    # following the change feed see the deletion.
    Column("deleted_at", UtcDateTime(), nullable=True),
    # P(good) from the quality model trained on curator labels (quality_model.py); null until scored.
    # Service-owned, never part of an import or edit; it orders the review queue (most uncertain first).
    Column("predicted_quality", Float, nullable=True),
)
Index("ix_examples_revision", examples.c.revision)
Index("ix_examples_input_hash", examples.c.input_hash)
Index("ix_examples_status_topic", examples.c.status, examples.c.topic)

# One row per counter; "revision" increases by one in every write transaction.
bank_meta = Table(
    "bank_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# Curator quality labels: append-only (an undo marks a label withdrawn, never deletes it).
labels = Table(
    "labels",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("example_id", String(64), ForeignKey("examples.id"), nullable=False, index=True),
    Column("annotator", String(200), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("score", Integer, nullable=True),
    Column("issues", JSON, nullable=False),
    Column("note", Text, nullable=True),
    Column("corrected_output", Text, nullable=True),
    Column("step_ratings", JSON, nullable=True),
    Column("first_wrong_step", Integer, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # The admin key that recorded the label for `annotator`; null when the annotator's own key did.
    Column("recorded_by", String(200), nullable=True),
    # A label its annotator (or an admin) took back: kept for the history, no longer counted.
    Column("withdrawn_at", UtcDateTime(), nullable=True),
    Column("withdrawn_by", String(200), nullable=True),
)

# Who changed what, when: one row per change to an example (the history endpoint reads it).
audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("example_id", String(64), nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

# Pairwise comparisons of two responses to one prompt, and the annotators' choices.
preferences = Table(
    "preferences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("prompt", Text, nullable=False),
    Column("response_a", Text, nullable=False),
    Column("response_b", Text, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

preference_labels = Table(
    "preference_labels",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("preference_id", String(64), ForeignKey("preferences.id"), nullable=False, index=True),
    Column("annotator", String(200), nullable=False),
    Column("choice", String(16), nullable=False),
    # Which response the annotator saw first ("a" or "b"), to measure position bias.
    Column("shown_first", String(1), nullable=False),
    Column("rationale", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Review-queue leases: an item handed to one annotator is not handed to another until it expires.
leases = Table(
    "leases",
    metadata,
    Column("item_id", String(64), primary_key=True),
    Column("annotator", String(200), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

# API keys created by admins (fewshot_service.auth). Only the sha256 of a key is stored: keys are random
# 32-byte tokens, so a fast hash cannot be brute-forced and a password KDF would only slow every request.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    # Written at most once a minute per key and process, off the request path.
    Column("last_used_at", UtcDateTime(), nullable=True),
    # Requests per second this key may make on each kind of route; null: FEWSHOT_RATE_LIMIT_PER_SECOND.
    Column("rate_per_second", Float, nullable=True),
)

# Issue 20: what /v1/select served (kept selection_retention_days), and what the application reported back.
selections = Table(
    "selections",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_name", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, index=True),
    Column("strategy", String(32), nullable=False),
    # sha256 of the normalised prompt groups repeats; the text itself only when log_prompts is on.
    Column("prompt_hash", String(64), nullable=False),
    Column("prompt", Text, nullable=True),
    Column("index_version", String(64), nullable=False),
    # The prompt's neighbourhood as the selector estimated it, independent of which examples were served.
    Column("estimated_topic", String(100), nullable=True),
    Column("difficulty_target", Float, nullable=True),
)

# No foreign keys to selections: pruning deletes items and feedback first, and a feedback row whose selection
# was pruned under it is never read (reads join selections).
selection_items = Table(
    "selection_items",
    metadata,
    Column("selection_id", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("example_id", String(64), nullable=False, index=True),
    Column("example_version", Integer, nullable=False),
)

# One row per selection: a later report replaces the earlier one (the latest feedback counts).
feedback = Table(
    "feedback",
    metadata,
    Column("selection_id", String(64), primary_key=True),
    Column("outcome", Float, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)
