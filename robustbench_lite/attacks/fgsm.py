"""Fast Gradient Sign Method.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
One gradient of the cross-entropy loss, one signed step of size eps. Linf only.
Cost: one forward and one backward pass per sample.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.threat import Norm, ThreatModel


class FGSM(Attack):
    """FGSM (Linf). No hyperparameters beyond the threat model."""

    name = "fgsm"
    norms = frozenset({Norm.LINF})
    kind = AttackKind.GRADIENT
    supports_targeted = True

    def __init__(self) -> None:
        self._set_params()

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        x_req = x.detach().clone().requires_grad_(True)
        loss = functional.cross_entropy(model(x_req), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_req)
        direction = -1.0 if threat.targeted else 1.0
        return threat.project(x + direction * threat.eps * grad.sign(), x).detach()
