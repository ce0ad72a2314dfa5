"""Sanity limits on sizes read from files and options, checked before anything is allocated:
a crafted header or a typo must be a one-line error, never an attempt to allocate terabytes."""

from __future__ import annotations

import os

#: Most classes a dataset or a model may have (ImageNet-21k has about 21,000).
MAX_CLASSES = 100_000

#: Assumed memory where the platform does not report it.
FALLBACK_MEMORY_BYTES = 16 * 2**30


def memory_bytes() -> int:
    """This machine's physical memory in bytes (`FALLBACK_MEMORY_BYTES` where the platform
    does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY_BYTES


def gib(count: int) -> str:
    """Bytes as GiB for a message: ``1,357.1 GiB``."""
    return f"{count / 2**30:,.1f} GiB"
