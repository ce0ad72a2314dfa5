"""Projected Gradient Descent.

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018. Iterated gradient ascent steps on the objective's loss (for
classification: the cross-entropy of the true class, or minus that of the target), each
projected back onto the eps-ball and the pixel box, from a random start inside the ball.
Linf (signed steps), L2 (normalised steps) and L1 (sparse steps on the largest gradient
coordinates, as in Tramer & Boneh, "Adversarial Training and Robustness for Multiple
Perturbations", NeurIPS 2019, with an exact L1-ball projection).
Cost: at most ``steps`` forward and backward passes per sample and restart.
"""

from __future__ import annotations

import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.attacks.fgsm import unit_l2
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def sparse_l1_direction(grad: torch.Tensor, x_adv: torch.Tensor,
                        top_fraction: float) -> torch.Tensor:
    """Unit-L1 ascent step along ``grad`` moving only the ``top_fraction`` largest gradient
    coordinates that can still move (upward where the gradient is positive, downward where
    it is negative) inside the pixel box."""
    movable = ~(((x_adv >= 1) & (grad > 0)) | ((x_adv <= 0) & (grad < 0)))
    magnitude = (grad.abs() * movable).flatten(1)
    k = max(1, round(top_fraction * magnitude.shape[1]))
    threshold = magnitude.topk(k, dim=1).values[:, -1:]
    chosen = (magnitude >= threshold) & (magnitude > 0)
    counts = chosen.sum(dim=1, keepdim=True).clamp_min(1)
    direction = grad.sign().flatten(1) * chosen / counts
    return direction.view_as(grad)


class PGD(Attack):
    """PGD (Linf, L2, L1): gradient ascent on the objective's loss, any task.

    Args:
        steps: gradient steps per restart (default 10).
        rel_step_size: step size as a fraction of eps (default 0.25).
        random_start: start uniformly inside the ball (default True).
        restarts: independent runs, each only on samples not yet broken (default 1).
        early_stop: evaluation mode (default True): a sample leaves the batch at the first
            step whose input reaches the objective (`Objective.success`), keeping that
            example; the robust accuracy is the same as with ``early_stop=False``, which runs
            every sample for all ``steps`` (fixed cost) and also keeps each sample's first
            successful iterate.
        l1_top_fraction: for L1, the fraction of coordinates moved per step (default 0.05).
    """

    name = "pgd"
    norms = frozenset({Norm.LINF, Norm.L2, Norm.L1})
    kind = AttackKind.GRADIENT

    def __init__(self, *, steps: int = 10, rel_step_size: float = 0.25,
                 random_start: bool = True, restarts: int = 1, early_stop: bool = True,
                 l1_top_fraction: float = 0.05) -> None:
        if steps < 1 or restarts < 1 or rel_step_size <= 0 or not 0 < l1_top_fraction <= 1:
            raise AttackError("pgd needs steps >= 1, restarts >= 1, rel_step_size > 0 and "
                              "0 < l1_top_fraction <= 1")
        self.steps = steps
        self.rel_step_size = rel_step_size
        self.random_start = random_start
        self.restarts = restarts
        self.early_stop = early_stop
        self.l1_top_fraction = l1_top_fraction
        self._set_params(steps=steps, rel_step_size=rel_step_size, random_start=random_start,
                         restarts=restarts, early_stop=early_stop,
                         l1_top_fraction=l1_top_fraction)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        best = x.clone()
        remaining = torch.arange(len(x), device=x.device)
        for restart in range(self.restarts):
            last = restart == self.restarts - 1
            x_adv, broken = self._one_run(model, x[remaining], objective.select(remaining),
                                          threat, generator, need_status=not last)
            best[remaining] = x_adv
            if last:
                break
            remaining = remaining[~broken]
            if len(remaining) == 0:
                break
        return best

    def _start(self, x: torch.Tensor, threat: ThreatModel,
               generator: torch.Generator) -> torch.Tensor:
        if not self.random_start or threat.eps == 0:
            return x.clone()
        if threat.norm is Norm.LINF:
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return threat.project(x + (2 * noise - 1) * threat.eps, x)
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if threat.norm is Norm.L1:
            direction = direction.sign() * direction.abs() ** 3  # mass on few coordinates
        size = threat.distances(x + direction, x).to(x.dtype).clamp_min(1e-12)
        radius = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)
        delta = direction * _per_sample(threat.eps * radius / size, x)
        return threat.project(x + delta, x)

    def _direction(self, grad: torch.Tensor, x_adv: torch.Tensor,
                   threat: ThreatModel) -> torch.Tensor:
        if threat.norm is Norm.LINF:
            return grad.sign()
        if threat.norm is Norm.L2:
            return unit_l2(grad)
        return sparse_l1_direction(grad, x_adv, self.l1_top_fraction)

    def _one_run(self, model: ModelFn, x: torch.Tensor, objective: Objective,
                 threat: ThreatModel, generator: torch.Generator,
                 need_status: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One run from a random start. Returns each sample's first successful iterate (else
        the last iterate) and, if ``need_status``, which samples were broken."""
        step = self.rel_step_size * threat.eps
        result = self._start(x, threat, generator)
        broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        active = torch.arange(len(x), device=x.device)
        x_adv, x_ref, goal = result.clone(), x, objective
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            outputs = model(x_adv)
            loss = goal.loss(outputs).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach()
            with torch.no_grad():
                fooled = goal.success(outputs.detach())
            if self.early_stop:
                if bool(fooled.any()):
                    result[active[fooled]] = x_adv[fooled]
                    broken[active[fooled]] = True
                    keep = ~fooled
                    active, x_adv, x_ref, grad = (
                        active[keep], x_adv[keep], x_ref[keep], grad[keep])
                    goal = goal.select(keep)
                    if len(active) == 0:
                        return result, broken
            else:
                newly = fooled & ~broken
                result = torch.where(_per_sample(newly, x_adv), x_adv, result)
                broken = broken | fooled
            x_adv = threat.project(x_adv + step * self._direction(grad, x_adv, threat), x_ref)
        still = ~broken[active]
        result[active[still]] = x_adv[still]
        if need_status and len(active):
            with torch.no_grad():
                fooled = goal.success(model(x_adv))
            broken[active] |= fooled
        return result, broken
