"""Selections served and the outcomes applications report for them (issue 20).

Revision ID: 0004
Revises: 0003_labels
Create Date: 2026-12-06

Written out rather than taken from bank/schema.py, like the earlier revisions, so it keeps creating the
tables of its own time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "selections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("index_version", sa.String(64), nullable=False),
        sa.Column("estimated_topic", sa.String(100), nullable=True),
        sa.Column("difficulty_target", sa.Float, nullable=True),
    )
    op.create_index("ix_selections_created_at", "selections", ["created_at"])
    op.create_table(
        "selection_items",
        sa.Column("selection_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("example_id", sa.String(64), nullable=False),
        sa.Column("example_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_selection_items_example_id", "selection_items", ["example_id"])
    op.create_table(
        "feedback",
        sa.Column("selection_id", sa.String(64), primary_key=True),
        sa.Column("outcome", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("selection_items")
    op.drop_index("ix_selections_created_at", "selections")
    op.drop_table("selections")
