"""A per-key rate limit (issue 16): requests per second a key may make on each kind of route, when it
should differ from FEWSHOT_RATE_LIMIT_PER_SECOND; null keeps the default.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop a column in place (downgrade), alembic copies the table instead.
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("rate_per_second", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("rate_per_second")
