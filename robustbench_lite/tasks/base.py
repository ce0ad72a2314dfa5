"""The `Task` plugin interface: what a kind of model outputs and how the host judges it.

A task is registered through ``register_tasks``. For one kind of model it says what the
output means, when a sample counts as correct (on clean input, and still correct under
attack: the host always re-predicts), which objective an attack pursues at a threat model,
how targets are chosen for targeted threat models, how an output reads in the report, and
any metrics and report sections of its own. The engine runs every task the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from robustbench_lite.errors import ThreatModelError
from robustbench_lite.tasks.objective import Objective
from robustbench_lite.threat import ThreatModel

if TYPE_CHECKING:
    from robustbench_lite.data.eval_data import EvalData
    from robustbench_lite.reports.sections import ReportSection


class Task(ABC):
    """Base class of every task. Subclasses set ``name``, ``description`` (one sentence:
    the model's output and what counts as correct) and ``version`` (raise it whenever a
    change alters any judgement or objective: stored results of older versions are then
    recomputed), and implement the abstract methods. Constructible with no arguments."""

    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[int] = 1
    #: Extra report sections shown when an audit runs this task.
    report_sections: ClassVar[tuple[ReportSection, ...]] = ()

    def check(self, outputs: torch.Tensor, data: EvalData) -> None:
        """Raise `ModelDataMismatchError` when the model's ``outputs`` on the first samples
        of ``data`` do not fit this task (say, a class count that differs). The default
        accepts any outputs."""
        return None

    @abstractmethod
    def correct(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample bool: the model is right about these samples (clean or attacked). A
        row holding NaN or inf is never right (the host enforces this on attacked ones)."""

    @abstractmethod
    def objective_type(self, threat: ThreatModel) -> type[Objective]:
        """The objective an attack pursues at ``threat``; `ThreatModelError` when this task
        has none there (the host then skips the threat model's cells with the message)."""

    @abstractmethod
    def objective(self, threat: ThreatModel, labels: torch.Tensor,
                  targets: torch.Tensor | None) -> Objective:
        """The objective of one batch: ``labels`` are the data's labels, ``targets`` the
        host's targets (targeted threat models only)."""

    def choose_targets(self, threat: ThreatModel, clean_outputs: torch.Tensor,
                       labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-sample targets for a targeted threat model, -1 where a sample has none (it is
        then not attacked). Only tasks with targeted objectives implement this."""
        raise ThreatModelError(f"task {self.name!r} has no targeted threat models")

    def explain(self, outputs: torch.Tensor, class_names: Sequence[str]
                ) -> list[tuple[str, float]]:
        """How each output reads in the report: a label and a confidence in [0, 1]."""
        return [("-", float("nan")) for _ in range(len(outputs))]

    def label_name(self, label: int, class_names: Sequence[str]) -> str:
        """How a data label reads in the report."""
        return class_names[label] if 0 <= label < len(class_names) else str(label)

    def metrics(self, clean_outputs: torch.Tensor, labels: torch.Tensor) -> Mapping[str, float]:
        """Task-specific numbers about the clean outputs, for ``results.json``."""
        return {}

