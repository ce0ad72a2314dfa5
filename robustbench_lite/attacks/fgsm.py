"""Fast Gradient Sign Method (Linf) and Fast Gradient Method (L2).

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
One gradient of the objective's loss (for classification: the cross-entropy of the true
class, or minus that of the target) and one step of size eps: its sign (Linf) or its
L2-normalised direction (L2). Cost: one forward and one backward pass per sample.
"""

from __future__ import annotations

import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel


def loss_gradient(model: ModelFn, x: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Gradient of the objective's summed loss with respect to the input only (each sample's
    gradient is its own loss's: the samples are independent)."""
    x_req = x.detach().clone().requires_grad_(True)
    loss = objective.loss(model(x_req)).sum()
    (grad,) = torch.autograd.grad(loss, x_req)
    return grad


def unit_l2(grad: torch.Tensor) -> torch.Tensor:
    """Each sample's gradient scaled to unit L2 norm (zero gradients stay zero)."""
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    scaled: torch.Tensor = grad / norms.view(-1, *([1] * (grad.dim() - 1)))
    return scaled


class _SingleStep(Attack):
    """One step of size eps along `direction` of the loss gradient (ascent)."""

    kind = AttackKind.GRADIENT
    single_step = True

    def __init__(self) -> None:
        self._set_params()

    @staticmethod
    def direction(grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        step = threat.eps * self.direction(loss_gradient(model, x, objective))
        return threat.project(x + step, x).detach()


class FGSM(_SingleStep):
    """FGSM (Linf): ``x + eps * sign(grad)``, ``grad`` the gradient of the objective's loss.
    No hyperparameters. One gradient per sample."""

    name = "fgsm"
    norms = frozenset({Norm.LINF})

    @staticmethod
    def direction(grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()


class FGM(_SingleStep):
    """FGM (L2): ``x + eps * grad / ||grad||_2``, ``grad`` the gradient of the objective's
    loss. No hyperparameters. One gradient per sample."""

    name = "fgm"
    norms = frozenset({Norm.L2})

    @staticmethod
    def direction(grad: torch.Tensor) -> torch.Tensor:
        return unit_l2(grad)
