"""One mapping from the error tree to what the CLI prints and the exit code it returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.text import Text

from ..errors import FewshotError, ImportFileError
from .output import err

T = TypeVar("T")

FAILED = 1  # any FewshotError: the message says which
INTERRUPTED = 130  # the shell's code for Ctrl-C, so scripts can tell it from a failure


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print `error: message` on stderr (one line) and return the Exit to raise."""
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def run(action: Callable[[], T]) -> T:
    """Call action; an error of the tree becomes its lines on stderr and a non-zero exit, never a traceback."""
    try:
        return action()
    except ImportFileError as exc:
        for number, reason in exc.line_errors:
            err.print(f"line {number}: {reason}", highlight=False, soft_wrap=True)
        raise fail(exc.message) from exc
    except FewshotError as exc:
        raise fail(exc.message) from exc
