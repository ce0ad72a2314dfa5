"""Projected Gradient Descent.

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018. Iterated gradient steps on the cross-entropy loss, each
projected back onto the eps-ball and the pixel box, from a uniformly random start inside the
ball. Linf (signed steps) and L2 (normalised steps).
Cost: ``steps`` forward and backward passes per sample and restart.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.errors import AttackError
from robustbench_lite.threat import Norm, ThreatModel


class PGD(Attack):
    """PGD (Linf, L2).

    Args:
        steps: gradient steps per restart (default 10).
        rel_step_size: step size as a fraction of eps (default 0.25, so that ``steps * step``
            covers the ball's diameter in 8 steps).
        random_start: start uniformly inside the ball (default True).
        restarts: independent runs; a sample counts as broken if any run breaks it (default 1).
    """

    name = "pgd"
    norms = frozenset({Norm.LINF, Norm.L2})
    kind = AttackKind.GRADIENT
    supports_targeted = True

    def __init__(self, *, steps: int = 10, rel_step_size: float = 0.25,
                 random_start: bool = True, restarts: int = 1) -> None:
        if steps < 1 or restarts < 1 or rel_step_size <= 0:
            raise AttackError("pgd needs steps >= 1, restarts >= 1 and rel_step_size > 0")
        self.steps = steps
        self.rel_step_size = rel_step_size
        self.random_start = random_start
        self.restarts = restarts
        self._set_params(steps=steps, rel_step_size=rel_step_size,
                         random_start=random_start, restarts=restarts)

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        best = x.clone()
        remaining = torch.arange(len(x), device=x.device)
        for _ in range(self.restarts):
            x_adv, broken = self._one_run(model, x[remaining], y[remaining], threat, generator)
            best[remaining] = x_adv
            remaining = remaining[~broken]
            if len(remaining) == 0:
                break
        return best

    def _start(self, x: torch.Tensor, threat: ThreatModel,
               generator: torch.Generator) -> torch.Tensor:
        if not self.random_start or threat.eps == 0:
            return x.clone()
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if threat.norm is Norm.LINF:
            delta = (2 * noise - 1) * threat.eps
        else:
            direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            norms = direction.flatten(1).norm(dim=1).clamp_min(1e-12)
            radius = threat.eps * noise.flatten(1)[:, 0] ** (1.0 / x[0].numel())
            delta = direction * (radius / norms).view(-1, *([1] * (x.dim() - 1)))
        return threat.project(x + delta, x)

    def _one_run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.rel_step_size * threat.eps
        sign = -1.0 if threat.targeted else 1.0
        x_adv = self._start(x, threat, generator)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            loss = functional.cross_entropy(model(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                if threat.norm is Norm.LINF:
                    update = grad.sign()
                else:
                    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                    update = grad / norms.view(-1, *([1] * (x.dim() - 1)))
                x_adv = threat.project(x_adv + sign * step * update, x)
        with torch.no_grad():
            predicted = model(x_adv).argmax(dim=1)
        broken = predicted == y if threat.targeted else predicted != y
        return x_adv.detach(), broken
