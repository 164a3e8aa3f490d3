"""Files the CLI writes for the operator: whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ..errors import FewshotError


@contextmanager
def replaced_whole(path: Path) -> Iterator[TextIO]:
    """A text file that takes path's place only once the block completes: an export cut short (a full disk,
    Ctrl-C, a bank gone) leaves the previous file, often the last good backup, as it was and nothing
    half-written that would read back as a smaller bank."""
    if path.is_dir():
        raise FewshotError(f"cannot write {str(path)!r}: it is a folder; name a file")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        handle = partial.open("w", encoding="utf-8")
    except OSError as exc:
        raise FewshotError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as exc:
        raise FewshotError(f"cannot write {str(path)!r}, left as it was: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
