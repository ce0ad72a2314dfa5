"""Built-in sanity checks, registered through the same hook as any plugin's. The order of
registration is the order of the report's sanity section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.checks.cells import EveryCellRan, ValidExamples
from robustbench_lite.checks.evaluation import EVALUATION_CHECKS
from robustbench_lite.checks.probes import PROBE_CHECKS
from robustbench_lite.hookspecs import hookimpl


@hookimpl
def register_checks(register: Callable[[Any], None]) -> None:
    for check in PROBE_CHECKS:
        register(check)
    for check in EVALUATION_CHECKS:
        register(check)
    register(EveryCellRan)
    register(ValidExamples)
