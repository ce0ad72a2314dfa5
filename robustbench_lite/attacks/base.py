"""The `Attack` plugin interface.

An attack is a class with keyword-only hyperparameters and one method, ``run``. The model is
an argument of the call, never attack state. The host (``robustbench_lite.engine.execute``)
seeds it, counts its model queries, verifies its output against the threat model and
re-predicts success itself: an attack's own claims are never trusted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from typing import ClassVar

import torch

from robustbench_lite.params import Parametrised
from robustbench_lite.threat import Norm, ThreatModel

#: What an attack may call: images in [0, 1] to logits.
LogitsFn = Callable[[torch.Tensor], torch.Tensor]


class AttackKind(str, Enum):
    GRADIENT = "gradient"
    SCORE = "score-based"
    DECISION = "decision-based"
    MINIMUM_NORM = "minimum-norm"
    BASELINE = "baseline"


class Attack(Parametrised, ABC):
    """Base class of every attack.

    Subclasses set ``name``, ``norms``, ``kind`` (and ``supports_targeted``), take their
    hyperparameters as keyword-only ``__init__`` arguments stored by `_set_params`, and
    implement `run`. The class docstring names the paper, the norms, the arguments with their
    defaults, and the cost in model queries.
    """

    name: ClassVar[str]
    norms: ClassVar[frozenset[Norm]]
    kind: ClassVar[AttackKind]
    supports_targeted: ClassVar[bool] = False
    #: True for one-step attacks (FGSM, FGM); checks expect iterative attacks to be stronger.
    single_step: ClassVar[bool] = False
    #: True for a backend registered under a prefix (``art``): users name ``art:Class`` and
    #: the class receives ``target="Class"``.
    namespace: ClassVar[bool] = False

    def supports(self, threat: ThreatModel) -> bool:
        return threat.norm in self.norms and (self.supports_targeted or not threat.targeted)

    @abstractmethod
    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        """Return adversarial examples for the batch ``x`` with labels ``y``.

        ``y`` holds the true labels (untargeted) or the target labels (targeted). All random
        numbers must come from ``generator`` so that a seed reproduces the batch. The result
        must have ``x``'s shape and dtype and lie inside ``threat``; the host checks.
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{type(self).__name__}({args})"


class MinimumNormAttack(Attack):
    """An attack that looks for the smallest adversarial perturbation in its norm.

    Subclasses implement `find_minimal`, which may return perturbations of any size;
    `run` projects them onto the threat model, so a sample counts as broken at ``eps`` only
    if its minimal perturbation (or its projection) still fools the model. `distances` gives
    the per-sample minimal norms (``inf`` where no adversarial example was found), from which
    a robustness curve over all eps follows.
    """

    kind = AttackKind.MINIMUM_NORM

    @abstractmethod
    def find_minimal(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, norm: Norm,
                     generator: torch.Generator) -> torch.Tensor:
        """Adversarial examples of minimal ``norm`` distance to ``x`` (unbounded; inside the
        pixel box [0, 1]); return ``x`` itself for samples where none was found."""

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        return threat.project(self.find_minimal(model, x, y, threat.norm, generator), x)

    @staticmethod
    def distances(model: LogitsFn, x: torch.Tensor, x_min: torch.Tensor, y: torch.Tensor,
                  norm: Norm) -> torch.Tensor:
        """Per-sample norm of ``x_min - x`` where ``x_min`` fools the model, else ``inf``."""
        with torch.no_grad():
            fooled = model(x_min).argmax(dim=1) != y
        sizes = ThreatModel(norm, 0.0).distances(x_min, x).to(x.dtype)
        return torch.where(fooled, sizes, torch.full_like(sizes, float("inf")))
