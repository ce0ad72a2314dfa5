"""The classification task's objectives and the capabilities they offer to attacks.

* `Misclassification` (``untargeted``): leave the true class. Loss: cross-entropy of the
  true class. Offers ``labels``, ``dlr`` (the DLR loss) and ``class-rounds`` (APGD-T's runs
  toward each of the most likely other classes).
* `TargetedMisclassification` (``targeted``): reach the host-chosen target class. Loss:
  minus the cross-entropy of the target. Offers ``targets``, ``dlr`` (targeted DLR) and
  ``class-rounds`` (one round, toward the target).
* `Toward`: one APGD-T round of an untargeted objective: still "leave the true class", with
  the targeted DLR loss toward one other class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch.nn import functional

from robustbench_lite.tasks.classification.losses import (
    dlr_loss,
    strongest_other,
    targeted_dlr_loss,
)
from robustbench_lite.tasks.objective import Objective

#: Capability names (see `robustbench_lite.tasks.objective`).
LABELS = "labels"
TARGETS = "targets"
DLR = "dlr"
CLASS_ROUNDS = "class-rounds"


@runtime_checkable
class OffersDLR(Protocol):
    """An objective with a difference-of-logits-ratio loss (capability ``dlr``)."""

    def dlr(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-sample DLR loss to maximise."""
        ...


@runtime_checkable
class OffersClassRounds(Protocol):
    """An objective that splits into runs toward single classes (``class-rounds``)."""

    def rounds(self, clean_outputs: torch.Tensor, count: int) -> list[Objective]:
        """Objectives to try in turn; each one's success implies this one's."""
        ...


def _margin(outputs: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """``z_own - max_{i != own} z_i`` per sample."""
    mine = outputs.gather(1, own[:, None]).squeeze(1)
    others = outputs.scatter(1, own[:, None], float("-inf")).amax(dim=1)
    return mine - others


def predicts(outputs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Where the top class of ``outputs`` is ``classes``; never where a row holds NaN or
    inf (such an output predicts nothing: wrong for the task, not a reached target)."""
    finite = torch.isfinite(outputs).all(dim=1)
    return (outputs.argmax(dim=1) == classes) & finite


@dataclass(frozen=True)
class Misclassification(Objective):
    """Untargeted: the model's top class differs from ``labels``."""

    labels: torch.Tensor

    name = "untargeted"
    offers = frozenset({LABELS, DLR, CLASS_ROUNDS})

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(outputs, self.labels, reduction="none")

    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        return ~predicts(outputs, self.labels)

    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        return _margin(outputs, self.labels)

    def dlr(self, outputs: torch.Tensor) -> torch.Tensor:
        return dlr_loss(outputs, self.labels)

    def rounds(self, clean_outputs: torch.Tensor, count: int) -> list[Objective]:
        """Toward each of the ``count`` most likely other classes on the clean input."""
        count = min(count, clean_outputs.shape[1] - 1)
        others = clean_outputs.scatter(1, self.labels[:, None], float("-inf"))
        order = others.argsort(dim=1, descending=True)
        return [Toward(self.labels, order[:, rank]) for rank in range(count)]


@dataclass(frozen=True)
class Toward(Objective):
    """Untargeted success, reached by raising class ``toward`` (one APGD-T round)."""

    labels: torch.Tensor
    toward: torch.Tensor

    name = "untargeted"
    offers = frozenset({LABELS, DLR})

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        return -functional.cross_entropy(outputs, self.toward, reduction="none")

    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        return ~predicts(outputs, self.labels)

    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        return _margin(outputs, self.labels)

    def dlr(self, outputs: torch.Tensor) -> torch.Tensor:
        return targeted_dlr_loss(outputs, self.labels, self.toward)


@dataclass(frozen=True)
class TargetedMisclassification(Objective):
    """Targeted: the model's top class is ``targets`` (``labels`` are the true classes,
    kept for the record; the attack need not use them)."""

    labels: torch.Tensor
    targets: torch.Tensor

    name = "targeted"
    offers = frozenset({TARGETS, DLR, CLASS_ROUNDS})

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        return -functional.cross_entropy(outputs, self.targets, reduction="none")

    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        return predicts(outputs, self.targets)

    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        return -_margin(outputs, self.targets)

    def dlr(self, outputs: torch.Tensor) -> torch.Tensor:
        # The attacker pushes the target above the strongest other class at each step.
        return targeted_dlr_loss(outputs, strongest_other(outputs.detach(), self.targets),
                                 self.targets)

    def rounds(self, clean_outputs: torch.Tensor, count: int) -> list[Objective]:
        return [self]
