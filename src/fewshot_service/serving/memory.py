"""Keeping the server's resident memory flat: fewer glibc malloc arenas.

glibc gives each thread that allocates concurrently an arena of its own, up to 8 per core. The server's
thread pool (embedding, FAISS, SQLite and ONNX Runtime work on 40 threads) then spreads short-lived buffers
over many arenas whose freed space is rarely returned: under benchmarks/load.py resident memory kept growing
with the default and levelled off with two arenas (figures in benchmarks/RESULTS.md, "Load").
Setting MALLOC_ARENA_MAX in the environment overrides this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (before the server starts its threads); False where that is not possible."""
    if "MALLOC_ARENA_MAX" in os.environ:  # the operator's choice, already read by glibc at start
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        done = bool(libc and libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        done = False
    if not done:
        log.debug("malloc arenas left as they are (not glibc)")
    return done
