"""Bounding every bank call, and knowing whether the bank is there.

A bank that is down refuses connections, which a connect timeout bounds. A partitioned one accepts them and
never answers: the server's statement_timeout cannot fire because the server never saw the statement, and
TCP timeouts do not fire either while something on the path still acknowledges the bytes. So a watchdog
thread cuts (shuts down the socket of) any PostgreSQL connection that has waited on one statement longer
than the statement timeout plus a grace; the caller then gets a disconnect error, translated into
BankUnavailable (503) like every other sign that the bank is not there.

BankHealth is the bank's last known state: probes (health.py) set it, failed calls mark it down. While a
prober runs and the bank is down, calls fail at once instead of each waiting for its timeout.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from ..errors import BankUnavailable

log = logging.getLogger(__name__)

# Time the server gets to report its own statement_timeout before the watchdog cuts the connection.
CUT_GRACE_SECONDS = 1.0
# SQLite errors that mean "the file cannot be written now", not "the statement is wrong".
TIMED_OUT = "the bank did not answer within the statement timeout"
CONFLICTED = "a concurrent transaction got in the way (deadlock or serialization failure)"
_SQLITE_UNAVAILABLE = ("locked", "readonly", "read-only", "disk i/o", "unable to open", "disk is full", "busy")


@dataclass(frozen=True)
class BankTimeouts:
    connect_seconds: float
    statement_seconds: float


class BankHealth:
    """Whether the bank answered lately: set by probes, marked down by failed calls."""

    def __init__(self) -> None:
        self.available: bool | None = None  # None: not probed yet
        self.reason: str | None = None
        self.changed_at = time.monotonic()
        self.probing = False  # a prober is running, so a down state will be noticed when it ends
        self.retry_after = 1

    def mark(self, available: bool, reason: str | None = None) -> None:
        if available != self.available:
            if available:
                if self.available is False:  # the first probe's answer is no news: only a recovery is
                    log.info("the bank is available again")
            else:
                log.warning("the bank is unavailable: %s", reason)
            self.changed_at = time.monotonic()
        self.available = available
        self.reason = None if available else reason

    def refusing(self) -> bool:
        """Fail fast: only while a prober will tell when the bank is back, so this never latches."""
        return self.probing and self.available is False

    def refuse(self) -> BankUnavailable:
        why = f" ({self.reason})" if self.reason else ""
        return BankUnavailable(f"the bank is unavailable{why}; retry later", retry_after=self.retry_after)


class Watchdog:
    """Cuts PostgreSQL connections stuck in one statement (or ping, commit, rollback) past the limit."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit = limit_seconds
        self._busy: dict[int, tuple[Any, float]] = {}  # id(dbapi connection) -> (connection, since)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cuts = 0

    def busy(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._busy[id(dbapi_connection)] = (dbapi_connection, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fewshot-bank-watchdog", daemon=True)
                self._thread.start()

    def idle(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._busy.pop(id(dbapi_connection), None)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(min(0.1, self.limit / 4)):
            now = time.monotonic()
            with self._lock:
                stuck = [conn for conn, since in self._busy.values() if now - since > self.limit]
                for conn in stuck:
                    self._busy.pop(id(conn), None)
            for conn in stuck:
                self._cut(conn)

    def _cut(self, dbapi_connection: Any) -> None:
        try:
            fd = dbapi_connection.pgconn.socket
            # shutdown() on a duplicate acts on the connection itself: the waiting read returns at once.
            with socket.socket(fileno=socket.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            self.cuts += 1
            log.warning("cut a bank connection that had not answered for %.1fs", self.limit)
        except Exception:  # already closed: nothing is waiting on it any more
            log.debug("cutting a bank connection failed", exc_info=True)


def unavailable_reason(exc: BaseException | None) -> str | None:
    """Why this driver error means the bank is not usable now (None: an error of the statement itself)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return str(exc) if any(word in text for word in _SQLITE_UNAVAILABLE) else None
    try:
        import psycopg
    except ImportError:  # SQLite-only installs
        return None
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return TIMED_OUT
    if isinstance(exc, psycopg.errors.TransactionRollback):
        return CONFLICTED
    if isinstance(exc, psycopg.OperationalError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def install(engine: Engine, health: BankHealth, watchdog: Watchdog | None) -> None:
    """Translate unavailability into BankUnavailable and, on PostgreSQL, let the watchdog time every wait."""

    @event.listens_for(engine, "handle_error")
    def translate(context: ExceptionContext) -> None:
        if watchdog is not None and context.connection is not None and not context.connection.invalidated:
            with contextlib.suppress(Exception):
                watchdog.idle(context.connection.connection.dbapi_connection)
        reason = unavailable_reason(context.original_exception)
        if context.is_disconnect and reason is None:
            reason = "the connection to the bank was lost"
        if reason is None:
            return
        # A slow statement or a deadlock says nothing of the bank's health; a lost or refused connection does.
        connectivity = context.is_disconnect or context.connection is None or reason not in (TIMED_OUT, CONFLICTED)
        if connectivity and not isinstance(context.original_exception, sqlite3.OperationalError):
            health.mark(False, reason)
        raise BankUnavailable(f"the bank is unavailable: {reason}", retry_after=health.retry_after) from (
            context.sqlalchemy_exception or context.original_exception
        )

    if watchdog is None:
        return

    def mark(conn: Any, busy: bool) -> None:
        # An invalidated connection has nothing left to wait on; asking it for its DBAPI connection would try
        # to reconnect (and raise inside the rollback that follows a lost connection).
        if conn.invalidated or conn.closed:
            return
        dbapi_connection = conn.connection.dbapi_connection
        if busy:
            watchdog.busy(dbapi_connection)
        else:
            watchdog.idle(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def started(conn: Any, *_: Any) -> None:
        mark(conn, True)

    @event.listens_for(engine, "after_cursor_execute")
    def finished(conn: Any, *_: Any) -> None:
        mark(conn, False)

    @event.listens_for(engine, "commit")
    def committing(conn: Any) -> None:
        mark(conn, True)

    @event.listens_for(engine, "rollback")
    def rolling_back(conn: Any) -> None:
        mark(conn, True)

    @event.listens_for(engine.pool, "checkin")
    def returned(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            watchdog.idle(dbapi_connection)

    @event.listens_for(engine.pool, "checkout")
    def ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # pool_pre_ping's own ping is invisible to the watchdog; this one is timed like any statement.
        from sqlalchemy.exc import DisconnectionError

        watchdog.busy(dbapi_connection)
        try:
            # In autocommit: one round trip, where a transaction's BEGIN and ROLLBACK made it three, and a
            # write checks out a connection for each of its steps. (Switching is local: nothing is sent.)
            dbapi_connection.autocommit = True
            try:
                dbapi_connection.execute("SELECT 1")
            finally:
                dbapi_connection.autocommit = False
        except Exception as exc:
            raise DisconnectionError(f"the pooled connection is gone: {exc}") from exc
        finally:
            watchdog.idle(dbapi_connection)


def retry_after(check_seconds: float) -> int:
    return max(1, math.ceil(check_seconds))
