"""Handing a process's freed memory back to the operating system.

glibc's ``malloc`` and Arrow's allocator keep freed pages for reuse, so a long-lived process
stays at its peak RSS after a big piece of work: a simulator worker after a big region, the
report builder after a big region's inputs, a reused report kernel after a big report. Where
such processes work side by side their peaks add up; releasing after each piece keeps the sum
near what they actually hold.
"""

from __future__ import annotations

__all__ = ["release_free_memory"]


def release_free_memory() -> None:
    """Collect garbage, then return the freed memory of Arrow's pool and of glibc's heap to
    the operating system (``malloc_trim``; nothing happens where there is no glibc)."""
    import ctypes
    import ctypes.util
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        trim = None
    if trim is not None:
        trim(0)
