"""Tasks (what a model's output means and how the host judges it) and their objectives
(what an attack maximises inside a task)."""

from robustbench_lite.tasks.base import Task
from robustbench_lite.tasks.objective import ModelFn, Objective

__all__ = ["ModelFn", "Objective", "Task"]
