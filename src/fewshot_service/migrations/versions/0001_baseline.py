"""Baseline: the bank as it stood when migrations were adopted (examples with predicted_quality).

Revision ID: 0001
Revises:
Create Date: 2026-11-25

The tables are written out here rather than taken from bank/schema.py: a migration must keep creating
the schema of its own revision after schema.py moves on.

Banks created before migrations (by ``metadata.create_all``) hold some or all of these tables already:
upgrading one creates only what is missing and adds the columns added since (predicted_quality), so
`fewshot db upgrade` adopts it without touching its data.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _examples() -> None:
    op.create_table(
        "examples",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("steps", sa.JSON, nullable=True),
        sa.Column("topic", sa.String(100), nullable=True),
        sa.Column("difficulty", sa.Integer, nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("quality", sa.Float, nullable=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("embedding_model", sa.String(300), nullable=True),
        sa.Column("embedding_dim", sa.Integer, nullable=True),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("predicted_quality", sa.Float, nullable=True),
        # The name create_all gave the constraint on SQLite and PostgreSQL alike is left to the database.
        sa.UniqueConstraint("external_id"),
    )
    op.create_index("ix_examples_revision", "examples", ["revision"])
    op.create_index("ix_examples_input_hash", "examples", ["input_hash"])
    op.create_index("ix_examples_status_topic", "examples", ["status", "topic"])


def _bank_meta() -> None:
    op.create_table(
        "bank_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )


def _labels() -> None:
    op.create_table(
        "labels",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("example_id", sa.String(64), sa.ForeignKey("examples.id"), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("issues", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("corrected_output", sa.Text, nullable=True),
        sa.Column("step_ratings", sa.JSON, nullable=True),
        sa.Column("first_wrong_step", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_labels_example_id", "labels", ["example_id"])


def _audit() -> None:
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("example_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_example_id", "audit", ["example_id"])


def _preferences() -> None:
    op.create_table(
        "preferences",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("response_a", sa.Text, nullable=False),
        sa.Column("response_b", sa.Text, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def _preference_labels() -> None:
    op.create_table(
        "preference_labels",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("preference_id", sa.String(64), sa.ForeignKey("preferences.id"), nullable=False),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("choice", sa.String(16), nullable=False),
        sa.Column("shown_first", sa.String(1), nullable=False),
        sa.Column("rationale", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_preference_labels_preference_id", "preference_labels", ["preference_id"])


def _leases() -> None:
    op.create_table(
        "leases",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("annotator", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


# In dependency order: a table comes after the tables its foreign keys name.
TABLES: dict[str, Callable[[], None]] = {
    "examples": _examples,
    "bank_meta": _bank_meta,
    "labels": _labels,
    "audit": _audit,
    "preferences": _preferences,
    "preference_labels": _preference_labels,
    "leases": _leases,
}
# Nullable columns added to existing tables before migrations existed: a pre-migration bank may lack them.
ADDED_BEFORE_MIGRATIONS = {"examples": [sa.Column("predicted_quality", sa.Float, nullable=True)]}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, create in TABLES.items():
        if name not in existing:
            create()
            continue
        present = {column["name"] for column in inspector.get_columns(name)}
        for column in ADDED_BEFORE_MIGRATIONS.get(name, []):
            if column.name not in present:
                op.add_column(name, column)
    bank_meta = sa.table("bank_meta", sa.column("key", sa.String), sa.column("value", sa.Integer))
    has_revision = op.get_bind().execute(sa.select(bank_meta.c.key).where(bank_meta.c.key == "revision")).first()
    if has_revision is None:
        op.bulk_insert(bank_meta, [{"key": "revision", "value": 0}])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
