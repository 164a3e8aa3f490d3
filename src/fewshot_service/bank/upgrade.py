"""Nullable columns added to existing tables after their first release, added in place at start-up.

``metadata.create_all`` creates missing tables but never alters existing ones, so a bank created before a
column existed would fail every ``select(examples)``. Until the project adopts migrations, each additive,
nullable column is listed here and added with ``ALTER TABLE ... ADD COLUMN`` (valid on SQLite and PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from .schema import examples

# (table, column name): nullable columns that older banks may lack.
ADDED_COLUMNS = ((examples, "predicted_quality"),)


def add_missing_columns(engine: Engine) -> list[str]:
    """Add the listed columns where the database lacks them; returns "table.column" for each one added."""
    added: list[str] = []
    for table, name in ADDED_COLUMNS:
        if name in {c["name"] for c in inspect(engine).get_columns(table.name)}:
            continue
        column = table.c[name]
        ddl = f"ALTER TABLE {table.name} ADD COLUMN {name} {column.type.compile(dialect=engine.dialect)}"
        try:
            with engine.begin() as conn:
                conn.execute(text(ddl))
        except SQLAlchemyError:
            # Another process may have added it meanwhile; anything else still fails below.
            if name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                raise
            continue
        added.append(f"{table.name}.{name}")
    return added
