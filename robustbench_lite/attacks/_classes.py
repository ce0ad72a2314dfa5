"""For attacks that work on class labels (DeepFool, Carlini-Wagner, the library backends):
which classes an objective names, read through its capabilities ``labels`` and
``targets``, never through its type."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.classification.objectives import LABELS, TARGETS
from robustbench_lite.tasks.objective import Objective


@dataclass(frozen=True)
class ClassGoal:
    """Per-sample classes and what to do with them: reach them (``targeted``) or leave
    them."""

    classes: torch.Tensor
    targeted: bool


def _field(objective: Objective, name: str, who: str) -> torch.Tensor:
    value = getattr(objective, name, None)
    if not isinstance(value, torch.Tensor):
        raise AttackError(f"{who}: objective {objective.name!r} offers {name} but has no "
                          f"{name} tensor")
    return value


def targets_first(offers: frozenset[str]) -> str | None:
    """The capability a label-based attack uses: ``targets`` where offered (success then
    means reaching them), else ``labels``, else None."""
    if TARGETS in offers:
        return TARGETS
    if LABELS in offers:
        return LABELS
    return None


def class_goal(objective: Objective, who: str) -> ClassGoal:
    """The target classes of an objective offering ``targets``, else the true classes of
    one offering ``labels`` (to leave); `AttackError` for an objective offering neither."""
    capability = targets_first(objective.offers)
    if capability is None:
        raise AttackError(f"{who} needs an objective offering {LABELS} or {TARGETS}; "
                          f"{objective.name!r} offers neither")
    return ClassGoal(_field(objective, capability, who), capability == TARGETS)


def labels_of(objective: Objective, who: str) -> torch.Tensor:
    """The true classes of an objective offering ``labels``; `AttackError` otherwise."""
    if LABELS not in objective.offers:
        raise AttackError(f"{who} needs an objective offering {LABELS}; "
                          f"{objective.name!r} does not offer it")
    return _field(objective, LABELS, who)


def labels_or_targets_reason(who: str, objective: type[Objective]) -> str:
    """Why an attack needing ``labels`` or ``targets`` cannot pursue ``objective``."""
    return (f"{who} needs {LABELS} or {TARGETS}, which objective {objective.name!r} does not "
            "offer")
