"""Waiting for the bank to change: PostgreSQL's LISTEN/NOTIFY where there is one, a timer everywhere.

Every write transaction on PostgreSQL sends ``NOTIFY fewshot_changes, '<revision>'`` (base.py), delivered
when it commits. A waiter on PostgreSQL holds one autocommit connection LISTENing on that channel and
returns as soon as a notification arrives; on SQLite, or while that connection is down, it just sleeps.
Either way the caller then reads the change feed itself (``changes_since``), so a notification lost in a
reconnect costs at most one poll interval, never a change.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine

from .base import CHANGES_CHANNEL

log = logging.getLogger(__name__)


class ChangeWaiter:
    def __init__(self, engine: Engine, stop: threading.Event) -> None:
        self.engine = engine
        self.stop = stop
        self.listening = engine.dialect.name == "postgresql"
        self._conn: Any = None  # a psycopg.Connection while LISTENing
        self._down_logged = False

    def wait(self, timeout: float) -> bool:
        """Block until a change is announced (True), `timeout` seconds pass or stop is set (False)."""
        if not self.listening:
            self.stop.wait(timeout)
            return False
        try:
            conn = self._conn or self._connect()
            woken = False
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                woken = True
            if woken:
                # Drain what else queued up: one read of the feed covers them all.
                for _ in conn.notifies(timeout=0):
                    pass
            return woken
        except Exception as exc:  # psycopg.Error and OSError alike: fall back to polling, reconnect later
            if not self._down_logged:
                log.warning(
                    "LISTEN %s failed (%s); polling every %.1fs until it is back", CHANGES_CHANNEL, exc, timeout
                )
                self._down_logged = True
            self.close()
            self.stop.wait(timeout)
            return False

    def _connect(self) -> Any:
        import psycopg
        from psycopg import sql

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs.pop("context", None)  # SQLAlchemy's type adapters: not needed to receive notifications
        kwargs.setdefault("connect_timeout", 10)
        conn = psycopg.connect(*args, **kwargs, autocommit=True)
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANGES_CHANNEL)))
        self._conn = conn
        if self._down_logged:
            log.info("LISTEN %s is back", CHANGES_CHANNEL)
            self._down_logged = False
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection may fail too; nothing is left to release
                log.debug("closing the LISTEN connection failed", exc_info=True)
