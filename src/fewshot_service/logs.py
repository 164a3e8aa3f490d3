"""Structured logs: one JSON object per line, carrying the id of the request being served.

The request id lives in a context variable set by the API's middleware; Starlette copies the context into
the thread pool that runs plain `def` routes, so log lines written there carry it too. Prompt text is never
passed to a logger unless `FEWSHOT_LOG_PROMPTS` is on (only the select route does, then).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("fewshot_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON.
# (uvicorn adds color_message, the same message with terminal colour codes.)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "taskName", "color_message"}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request {request_id}]" if request_id else line


def configure(level: str, fmt: str = "json") -> None:
    """Route every logger (uvicorn's included) to stderr in the given format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.setLevel(level.upper())  # libraries that lower their own logger (bm25s sets DEBUG) stay at ours
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's loggers propagate to the root handler instead of keeping their own.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
