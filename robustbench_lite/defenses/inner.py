"""The inner loop every adversarial-training defense shares: projected gradient ascent on
the input, from a chosen start, with all random numbers from the step's seeded generator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional

from robustbench_lite.attacks.fgsm import unit_l2
from robustbench_lite.defenses.base import TrainingStep
from robustbench_lite.threat import Norm, ThreatModel


def direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest-ascent step of unit size: the sign (Linf) or the per-sample unit-L2
    gradient (L2)."""
    return grad.sign() if norm is Norm.LINF else unit_l2(grad)


def ascend(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
           start: torch.Tensor, threat: ThreatModel, step_size: float,
           steps: int) -> torch.Tensor:
    """Projected gradient ascent on ``objective`` (a scalar, summed over the batch so that
    each sample's gradient is its own) from ``start``: ``steps`` steps of ``step_size`` along
    `direction`, each projected onto ``threat`` around ``x``. Gradients are taken with
    respect to the input only. Cost: ``steps`` forward and backward passes."""
    x_adv = start.detach()
    for _ in range(steps):
        with torch.enable_grad():
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = threat.project(x_adv.detach() + step_size * direction(grad, threat.norm), x)
    return x_adv.detach()


def noise(kind: str, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise shaped like ``x`` from ``generator`` (on the generator's device, then moved to
    ``x``'s): ``uniform`` in [0, 1), ``normal`` standard Gaussian."""
    draw = torch.rand if kind == "uniform" else torch.randn
    values = draw(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return values.to(x.device)


def uniform_start(x: torch.Tensor, threat: ThreatModel,
                  generator: torch.Generator) -> torch.Tensor:
    """A start drawn uniformly from the eps-ball (by volume), projected onto the pixel box.
    Linf: independent uniform noise in [-eps, eps]. L2: a uniformly random direction at
    radius ``eps * u ** (1 / d)``, ``u`` uniform in [0, 1) and ``d`` the input dimension."""
    if threat.norm is Norm.LINF:
        return threat.project(x + (2 * noise("uniform", x, generator) - 1) * threat.eps, x)
    heading = unit_l2(noise("normal", x, generator))
    u = noise("uniform", x.new_empty(len(x)), generator)
    radius = threat.eps * u ** (1.0 / x[0].numel())
    return threat.project(x + heading * radius.view(-1, *([1] * (x.dim() - 1))), x)


def cross_entropy_objective(step: TrainingStep) -> Callable[[torch.Tensor], torch.Tensor]:
    def objective(x_adv: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(step.model(x_adv), step.y, reduction="sum")
    return objective
