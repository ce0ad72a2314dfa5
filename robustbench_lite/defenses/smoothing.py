"""Label smoothing: a training objective with softened targets."""

from __future__ import annotations

import torch
from torch.nn import functional

from robustbench_lite.defenses.base import Defense, TrainingStep
from robustbench_lite.errors import DefenseError


class LabelSmoothing(Defense):
    """Label smoothing (``label-smoothing``).

    Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, "Rethinking the Inception Architecture for
    Computer Vision", CVPR 2016. The cross-entropy against targets that keep ``1 - s`` of
    the mass on the true class and spread ``s`` uniformly over all ``K`` classes::

        loss = CE(f(x), (1 - s) * onehot(y) + s / K)

    (``torch.nn.functional.cross_entropy(..., label_smoothing=s)``). It only owns the loss:
    alone it trains on the clean batch; with a perturbing defense (``pgd-at``, ``fast-at``)
    it applies to the perturbed batch. It cannot be combined with a defense that defines its
    own loss (``fgsm-at``, ``trades``). On its own it is not a robustness defense: it
    flattens the loss surface that gradient attacks follow and can make a model look more
    robust than it is, which the audit's checks are there to catch.

    Args:
        smoothing: the mass ``s`` moved off the true class, 0 < s < 1 (default 0.1).

    Cost per step: none beyond plain training (1 forward and 1 backward pass).
    """

    name = "label-smoothing"

    def __init__(self, *, smoothing: float = 0.1) -> None:
        if isinstance(smoothing, bool) or not isinstance(smoothing, int | float) or not (
                0 < smoothing < 1):
            raise DefenseError(f"`defense` {self.name}: smoothing must be a number with "
                               f"0 < smoothing < 1, got {smoothing!r}")
        self.smoothing = float(smoothing)
        self._set_params(smoothing=self.smoothing)

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        return functional.cross_entropy(logits, step.y, label_smoothing=self.smoothing)
