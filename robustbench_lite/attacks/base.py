"""The `Attack` plugin interface.

An attack is a class with keyword-only hyperparameters and one method, ``run``. It attacks
an *objective* (`robustbench_lite.tasks.objective.Objective`: a loss to maximise and a
success test), never labels, so it serves every task whose objectives offer what it needs
(``requires``). The model is an argument of the call, never attack state. The host
(``robustbench_lite.host``) seeds it, counts its model queries, verifies its output against
the threat model and re-judges success itself: an attack's own claims are never trusted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import ClassVar

import torch

from robustbench_lite.params import Parametrised
from robustbench_lite.tasks.objective import ModelFn, Objective, missing_capabilities
from robustbench_lite.threat import Norm, ThreatModel

#: What an attack may call: images in [0, 1] to the model's outputs (logits for classifiers).
LogitsFn = ModelFn


class AttackKind(str, Enum):
    GRADIENT = "gradient"
    SCORE = "score-based"
    DECISION = "decision-based"
    MINIMUM_NORM = "minimum-norm"
    BASELINE = "baseline"


class Attack(Parametrised, ABC):
    """Base class of every attack.

    Subclasses set ``name``, ``norms``, ``kind`` (and ``requires``, the objective
    capabilities they use beyond loss, success and margin), take their hyperparameters as
    keyword-only ``__init__`` arguments stored by `_set_params`, and implement `run`. The
    class docstring names the paper, the norms, the arguments with their defaults, and the
    cost in model queries. Raise ``version`` whenever a change alters results: stored cells
    of older versions are then recomputed.
    """

    name: ClassVar[str]
    norms: ClassVar[frozenset[Norm]]
    kind: ClassVar[AttackKind]
    #: Objective capabilities the attack needs (e.g. ``{"dlr"}``); see `serves`.
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Implementation version, part of every stored cell's key.
    version: ClassVar[int] = 1
    #: True for one-step attacks (FGSM, FGM); checks expect iterative attacks to be stronger.
    single_step: ClassVar[bool] = False
    #: True for a backend registered under a prefix (``art``): users name ``art:Class`` and
    #: the class receives ``target="Class"``.
    namespace: ClassVar[bool] = False

    def supports(self, threat: ThreatModel) -> bool:
        """Whether the attack works in ``threat``'s norm."""
        return threat.norm in self.norms

    def serves(self, objective: type[Objective]) -> bool:
        """Whether the attack can pursue ``objective`` (default: it offers ``requires``)."""
        return not missing_capabilities(self.requires, objective)

    def unserved_reason(self, objective: type[Objective]) -> str:
        """One line: why `serves` is False for ``objective``."""
        missing = missing_capabilities(self.requires, objective) or sorted(self.requires)
        return (f"{self.name} needs {', '.join(missing)}, which objective "
                f"{objective.name!r} does not offer")

    @abstractmethod
    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        """Return adversarial examples for the batch ``x``, pursuing ``objective`` (indexed
        like ``x``; `Objective.select` gives a subset's).

        All random numbers must come from ``generator`` so that a seed reproduces the batch.
        The result must have ``x``'s shape and dtype and lie inside ``threat``; the host
        checks, and judges success itself.
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
    def find_minimal(self, model: ModelFn, x: torch.Tensor, objective: Objective, norm: Norm,
                     generator: torch.Generator) -> torch.Tensor:
        """Adversarial examples of minimal ``norm`` distance to ``x`` (unbounded; inside the
        pixel box [0, 1]); return ``x`` itself for samples where none was found."""

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        return threat.project(self.find_minimal(model, x, objective, threat.norm, generator),
                              x)

    @staticmethod
    def distances(model: ModelFn, x: torch.Tensor, x_min: torch.Tensor, objective: Objective,
                  norm: Norm) -> torch.Tensor:
        """Per-sample norm of ``x_min - x`` where ``x_min`` reaches ``objective``, else
        ``inf``."""
        with torch.no_grad():
            reached = objective.success(model(x_min))
        sizes = ThreatModel(norm, 0.0).distances(x_min, x).to(x.dtype)
        return torch.where(reached, sizes, torch.full_like(sizes, float("inf")))
