"""Tables of the example bank, in SQLAlchemy Core so SQLite and PostgreSQL share one schema."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

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
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    # The bank revision of the last write to this row: what a change feed reads.
    Column("revision", Integer, nullable=False),
    # The embedding of `input` under `embedding_model` (float32 bytes), so rebuilds never re-embed.
    Column("embedding", LargeBinary, nullable=True),
    Column("embedding_model", String(300), nullable=True),
    Column("embedding_dim", Integer, nullable=True),
)
Index("ix_examples_revision", examples.c.revision)
Index("ix_examples_status_topic", examples.c.status, examples.c.topic)

# One row per counter; "revision" increases by one in every write transaction.
bank_meta = Table(
    "bank_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)
