"""The built-in ``classification`` task: a closed-set classifier judged against true labels.

Outputs are class logits; a sample is correct when the top class is its label. Untargeted
threat models pursue `Misclassification`, targeted ones `TargetedMisclassification` toward a
target the host chooses per sample with the run's seed (`choose_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from robustbench_lite.errors import ModelDataMismatchError, ThreatModelError
from robustbench_lite.tasks.base import Task
from robustbench_lite.tasks.classification.objectives import (
    Misclassification,
    TargetedMisclassification,
    predicts,
)
from robustbench_lite.tasks.objective import Objective
from robustbench_lite.threat import ThreatModel, fixed_target

if TYPE_CHECKING:
    from robustbench_lite.data.eval_data import EvalData

#: Value of a sample's target where it has none (a fixed target equal to its own class).
NO_TARGET = -1


class ClassificationTask(Task):
    """Class logits; correct when the top class is the label. Objectives: ``untargeted``
    (leave the true class) and ``targeted`` (reach the host's target)."""

    name = "classification"
    description = ("class logits; a sample is correct when the most likely class is its "
                   "label")

    def check(self, outputs: torch.Tensor, data: EvalData) -> None:
        if outputs.shape[1] != data.num_classes:
            raise ModelDataMismatchError(f"the model has {outputs.shape[1]} classes but "
                                         f"dataset {data.name!r} has {data.num_classes}; "
                                         "audit it on matching data")

    def correct(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return predicts(outputs, labels)

    def objective_type(self, threat: ThreatModel) -> type[Objective]:
        return TargetedMisclassification if threat.targeted else Misclassification

    def objective(self, threat: ThreatModel, labels: torch.Tensor,
                  targets: torch.Tensor | None) -> Objective:
        if not threat.targeted:
            return Misclassification(labels)
        if targets is None:
            raise ThreatModelError(f"{threat.label} needs the host's targets")
        return TargetedMisclassification(labels, targets)

    def choose_targets(self, threat: ThreatModel, clean_outputs: torch.Tensor,
                       labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``random``: a wrong class drawn uniformly; ``next-likely``: the most likely wrong
        class on the clean input; ``least-likely``: the least likely class (never the label);
        a class index: that class (no target, -1, for samples of that class)."""
        classes = clean_outputs.shape[1]
        if classes < 2:
            raise ThreatModelError("targeted threat models need at least 2 classes")
        mode = threat.targets
        fixed = fixed_target(mode)
        if fixed is not None:
            if fixed >= classes:
                raise ThreatModelError(f"target class {fixed} does not exist: the model has "
                                       f"{classes} classes (0..{classes - 1})")
            targets = torch.full_like(labels, fixed)
            return torch.where(labels == fixed, torch.full_like(labels, NO_TARGET), targets)
        if mode == "random":
            shift = torch.randint(1, classes, labels.shape, generator=generator,
                                  device=generator.device)
            return (labels + shift.to(labels.device)) % classes
        own = labels[:, None].to(clean_outputs.device)
        if mode == "next-likely":
            others = clean_outputs.scatter(1, own, float("-inf"))
            return others.argmax(dim=1).to(labels.device)
        others = clean_outputs.scatter(1, own, float("inf"))
        return others.argmin(dim=1).to(labels.device)

    def explain(self, outputs: torch.Tensor, class_names: Sequence[str]
                ) -> list[tuple[str, float]]:
        probabilities = torch.softmax(outputs.detach().float(), dim=1).cpu()
        return [(self.label_name(int(row.argmax()), class_names), float(row.max()))
                for row in probabilities]


__all__ = ["NO_TARGET", "ClassificationTask"]
