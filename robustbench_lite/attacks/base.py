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
from typing import Any, ClassVar

import torch

from robustbench_lite.threat import Norm, ThreatModel

#: What an attack may call: images in [0, 1] to logits.
LogitsFn = Callable[[torch.Tensor], torch.Tensor]


class AttackKind(str, Enum):
    GRADIENT = "gradient"
    SCORE = "score-based"
    DECISION = "decision-based"
    MINIMUM_NORM = "minimum-norm"
    BASELINE = "baseline"


class Attack(ABC):
    """Base class of every attack.

    Subclasses set ``name``, ``norms``, ``kind`` (and ``supports_targeted``), take their
    hyperparameters as keyword-only ``__init__`` arguments stored by `_set_params`, and
    implement `run`.
    """

    name: ClassVar[str]
    norms: ClassVar[frozenset[Norm]]
    kind: ClassVar[AttackKind]
    supports_targeted: ClassVar[bool] = False

    _params: dict[str, Any]

    def _set_params(self, **params: Any) -> None:
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """Hyperparameters, as given to ``__init__`` (defaults included)."""
        return dict(getattr(self, "_params", {}))

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
