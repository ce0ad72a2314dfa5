"""Built-in tasks, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.gan.task import GanTask
from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.tasks.classification.task import ClassificationTask


@hookimpl
def register_tasks(register: Callable[[Any], None]) -> None:
    register(ClassificationTask)
    register(GanTask)
