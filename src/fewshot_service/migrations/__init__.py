"""Alembic migrations of the bank's schema, shipped inside the package and run by `fewshot db upgrade`.

Alembic is configured in code (fewshot_service.bank.migrate), so no alembic.ini is needed at run time.
The chain is linear: each revision names the one before it. Every migration runs on SQLite and
PostgreSQL; table changes SQLite cannot do in place go through ``op.batch_alter_table``.

A new revision: edit bank/schema.py, then ``fewshot db revision "what changed" --autogenerate`` against a
bank at head writes versions/<next>_<slug>.py to review and complete (data moves, downgrade).
"""
