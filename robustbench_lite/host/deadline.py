"""A wall-clock limit on plugin code: `time_limit` raises `TimeLimitExceeded` inside the
running code when the limit passes.

It works through ``SIGALRM``, so only in the main thread of a process on a platform that has
it (elsewhere the limit is not enforced, and a debug message says so). The signal is re-sent
every second until the block ends, so plugin code that swallows the first one is interrupted
again. Code blocked inside a single native call (one enormous tensor operation, a read that
never returns) is interrupted only when that call returns.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)


class TimeLimitExceeded(BaseException):
    """Raised inside plugin code when its time limit passed. A `BaseException`, so that a
    plugin's ``except Exception`` does not swallow it."""


def enforceable() -> bool:
    """Whether `time_limit` can interrupt code here (main thread, ``SIGALRM`` available)."""
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, label: str) -> Iterator[None]:
    """Raise `TimeLimitExceeded` in the block once ``seconds`` passed (None or 0: no limit)."""
    if not seconds or seconds <= 0:
        yield
        return
    if not enforceable():
        logger.debug("%s: the time limit is not enforced outside the main thread", label)
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise TimeLimitExceeded(f"{label} ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
