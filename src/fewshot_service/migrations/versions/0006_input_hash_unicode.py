"""Exact duplicates compared as a reader sees the text: every example's input hash recomputed.

Until this revision an input was hashed lower-cased with its white space collapsed, so a decomposed "é", a
full-width "１２" or a zero-width space inside a word made a copy that the exact check (the one repeated
inside the write transaction, which concurrent adds and replicas rely on) did not see. The hash now also
drops unseen characters, composes (NFC) and reads full-width ASCII as ASCII (models.normalise_text).

Only rows whose hash changes are written: an input of plain ASCII without control characters hashes as
before, so on most banks this touches few rows. Both forms are written out here rather than imported, like
the earlier revisions' tables: this revision computes the hash of its own time, and a later change of
normalise_text comes with its own revision (a test holds every stored hash at head to input_hash).

Selections' prompt_hash is left as it is: the prompt itself is kept only when FEWSHOT_LOG_PROMPTS is set, and
old selections age out after FEWSHOT_SELECTION_RETENTION_DAYS.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 2000
_UNSEEN = re.compile(
    r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


def _as_read(text: str) -> str:
    text = unicodedata.normalize("NFC", _UNSEEN.sub("", text))
    return " ".join(text.translate(_FULL_WIDTH_TO_ASCII).lower().split())


def _as_typed(text: str) -> str:
    return " ".join(text.lower().split())


def _rehash(form: Callable[[str], str]) -> None:
    examples = sa.table("examples", sa.column("id", sa.String), sa.column("input", sa.Text), sa.column("input_hash"))
    connection = op.get_bind()
    update = (
        examples.update().where(examples.c.id == sa.bindparam("row_id")).values(input_hash=sa.bindparam("new_hash"))
    )
    last_id = ""
    while True:  # keyset batches: a million-row bank is read a few thousand rows at a time
        rows = connection.execute(
            sa.select(examples.c.id, examples.c.input, examples.c.input_hash)
            .where(examples.c.id > last_id)
            .order_by(examples.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        changed = []
        for row in rows:
            digest = hashlib.sha256(form(row.input).encode()).hexdigest()
            if digest != row.input_hash:
                changed.append({"row_id": row.id, "new_hash": digest})
        if changed:
            connection.execute(update, changed)
        last_id = rows[-1].id


def upgrade() -> None:
    _rehash(_as_read)


def downgrade() -> None:
    _rehash(_as_typed)
