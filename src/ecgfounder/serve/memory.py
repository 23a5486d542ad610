"""The server process's heap: big buffers from ``mmap``, and freed memory given back after load.

A request's body and the arrays a parse returns are tens of megabytes each. glibc's allocator
serves big requests from ``mmap`` (returned to the system on ``free``) only up to a threshold that
it raises after the first big buffer is freed (up to 32 MB on 64-bit); after that, buffers of
request size come from the heap arenas, and a freed arena page stays in the process. Under load
from many threads (the model, drawing, receiving) the server grew by a gigabyte and kept it.

:func:`configure_allocator` fixes the threshold (no raising), so big buffers are always mapped and
unmapped; :class:`MemoryReleaser` asks glibc (``malloc_trim``) to return the free pages of every
arena when the server falls idle, at most once per ``min_interval_s``. Both do nothing where the
C library is not glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import time
from typing import Any

__all__ = ["configure_allocator", "MemoryReleaser", "release_free_memory"]

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers of glibc's malloc.h


@functools.lru_cache(maxsize=1)
def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def configure_allocator(mmap_threshold_bytes: int = 1 << 20) -> bool:
    """Serve every allocation of ``mmap_threshold_bytes`` or more from ``mmap`` (fixed threshold)."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes)) == 1)


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the system (glibc ``malloc_trim(0)``)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


class MemoryReleaser:
    """Called when the server falls idle: trims the heap off the event loop, at most once per
    ``min_interval_s`` (an idle moment inside that interval schedules one trim at its end, so the
    last idle moment after a load always ends in a trim)."""

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self.min_interval_s = float(min_interval_s)
        self.last = float("-inf")
        self.runs = 0
        self._scheduled: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._scheduled is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self.last + self.min_interval_s - time.monotonic())
        self._scheduled = loop.call_later(delay, self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = None
        self.last = time.monotonic()
        self.runs += 1
        loop.run_in_executor(None, release_free_memory)

    def cancel(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
