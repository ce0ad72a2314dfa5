"""Executors: where units of work run.

The engine hands an executor a list of independent units and a function computing one; the
executor yields each record as it finishes, in any order. The built-in executor runs them
one after the other in this process. A distributed executor (e.g. on Ray) implements the
same protocol and needs no change to the engine: the work function and units are plain
picklable-in-principle data plus the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from robustbench_lite.engine.store import UnitRecord
from robustbench_lite.engine.units import WorkUnit


class Executor(Protocol):
    def run(self, units: Sequence[WorkUnit],
            work: Callable[[WorkUnit], UnitRecord]) -> Iterator[UnitRecord]:
        """Compute every unit with ``work`` and yield the records as they finish."""
        ...


class InProcessExecutor:
    """Runs units sequentially in the calling process."""

    def run(self, units: Sequence[WorkUnit],
            work: Callable[[WorkUnit], UnitRecord]) -> Iterator[UnitRecord]:
        for unit in units:
            yield work(unit)
