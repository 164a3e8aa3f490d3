"""Label authorship and undo (issue 16): who recorded a label for someone else, and withdrawn labels.

Revision ID: 0003_labels
Revises: 0002
Create Date: 2026-12-06

recorded_by is the admin key that labelled on an annotator's behalf (null when the annotator's own key
did); withdrawn_at/withdrawn_by mark a label its annotator took back: it stays in the history but no
longer counts. Existing labels are their annotators' own and current, so every new column starts null.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_labels"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A bank created whole by metadata.create_all (before migrations existed) has them already: adopted.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("labels")}
    wanted: list[sa.Column[object]] = [
        sa.Column("recorded_by", sa.String(200), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(200), nullable=True),
    ]
    with op.batch_alter_table("labels") as table:
        for column in wanted:
            if column.name not in present:
                table.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("labels") as table:
        table.drop_column("withdrawn_by")
        table.drop_column("withdrawn_at")
        table.drop_column("recorded_by")
