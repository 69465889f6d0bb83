"""The C allocator's setting that lets a long-running operator give memory back.

Each TLS connection to the API server holds a 256 KiB read buffer. glibc serves blocks that large
with mmap, and returns them to the system when freed, until the first one is freed: from then on
it raises its mmap threshold and serves them from the heap, which fragments and never shrinks.
After a burst of connections (a thousand APIs' status writes at start-up) the operator would keep
the burst's buffers for good. Fixing the threshold keeps large blocks in mmap, so they go back.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BLOCK = 128 * 1024
"""glibc's own initial threshold: blocks from this size up are mapped, and unmapped when freed."""


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc (nothing to fix)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK))
