"""The real PostgreSQL server for tests: a fresh database per test (or module), dropped afterwards.

The server is the machine's own (127.0.0.1:5432, trust auth; `.ci/run` starts it when it is down);
FEWSHOT_TEST_POSTGRES names another one. Without a reachable server the PostgreSQL tests are skipped on a
developer's machine but fail under CI (CI is set there), so CI never passes by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("FEWSHOT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def require_postgres() -> None:
    try:
        psycopg.connect(_conninfo(ADMIN_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {make_url(ADMIN_URL).render_as_string()}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests (.ci/run starts the server)")
        pytest.skip(message)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the test server; yields its SQLAlchemy URL and drops it afterwards."""
    require_postgres()
    name = f"fewshot_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(ADMIN_URL), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_conninfo(ADMIN_URL), autocommit=True) as admin:
            # FORCE: a server process killed by a failing test may still hold a connection.
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
