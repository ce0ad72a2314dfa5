"""DeepFool.

Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks", CVPR 2016. At each step the classifier is linearised around the current
point; the perturbation that reaches the nearest linearised decision boundary (among the
``candidates`` most likely classes) is added, until the objective is reached (the prediction
changes). The accumulated perturbation is finally scaled by ``1 + overshoot`` to cross the
boundary. Linf and L2; untargeted classification only (it needs the objective's ``labels``).
Cost: one forward pass and at most ``candidates - 1`` input gradients per step and still
unfooled sample, so at most ``steps * candidates`` gradient computations.
"""

from __future__ import annotations

import torch

from robustbench_lite.attacks._classes import labels_of
from robustbench_lite.attacks.base import MinimumNormAttack
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.classification.objectives import LABELS
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm


class DeepFool(MinimumNormAttack):
    """DeepFool (Linf, L2), untargeted, minimum-norm. Needs an objective offering
    ``labels`` (the true classes, whose boundaries it crosses).

    Args:
        steps: maximum number of linearisation steps (default 50).
        overshoot: the accumulated perturbation is multiplied by ``1 + overshoot`` (default
            0.02), which pushes the example over the boundary.
        candidates: number of most likely classes (by the clean logits, the true class
            included) whose boundaries are considered (default 10; at least 2).

    Cost: at most ``steps + 1`` forward passes and ``steps * (candidates - 1)`` input
    gradients (``<= steps * candidates``), each over the samples not fooled yet; a sample stops
    as soon as it reaches the objective (`Objective.success`: misclassified).
    Randomness: none (``generator`` is unused).
    """

    name = "deepfool"
    norms = frozenset({Norm.LINF, Norm.L2})
    requires = frozenset({LABELS})

    def __init__(self, *, steps: int = 50, overshoot: float = 0.02,
                 candidates: int = 10) -> None:
        if steps < 1 or overshoot < 0 or candidates < 2:
            raise AttackError("deepfool needs steps >= 1, overshoot >= 0 and candidates >= 2")
        self.steps = steps
        self.overshoot = overshoot
        self.candidates = candidates
        self._set_params(steps=steps, overshoot=overshoot, candidates=candidates)

    def find_minimal(self, model: ModelFn, x: torch.Tensor, objective: Objective, norm: Norm,
                     generator: torch.Generator) -> torch.Tensor:
        if norm not in self.norms:
            raise AttackError(f"deepfool supports {sorted(n.value for n in self.norms)}, "
                              f"not {norm.value}")
        y = labels_of(objective, self.name).to(x.device)
        x = x.detach()
        result = x.clone()
        if len(x) == 0:
            return result
        with torch.no_grad():
            clean_logits = model(x)
        k = min(self.candidates, clean_logits.shape[1])
        if k < 2:
            raise AttackError("deepfool needs a model with at least 2 classes")
        # Candidate classes: the true class first, then the most likely others.
        forced = clean_logits.detach().clone()
        forced.scatter_(1, y.view(-1, 1), float("inf"))
        classes = forced.topk(k, dim=1).indices

        r_total = torch.zeros_like(x)
        x_cur = x.clone()
        active = torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            x_active = x_cur[active].requires_grad_(True)
            logits = model(x_active)
            with torch.no_grad():
                fooled = objective.select(active).success(logits.detach())
            if bool(fooled.any()):
                result[active[fooled]] = x_cur[active[fooled]]
            keep = ~fooled
            if not bool(keep.any()):
                return result
            step = self._step(logits, x_active, classes[active], keep, norm)
            active = active[keep]
            with torch.no_grad():
                r_total[active] += step
                x_cur[active] = (x[active] + (1 + self.overshoot) * r_total[active]).clamp(0, 1)
        with torch.no_grad():
            fooled = objective.select(active).success(model(x_cur[active]))
        result[active[fooled]] = x_cur[active[fooled]]
        return result

    def _step(self, logits: torch.Tensor, x_active: torch.Tensor, classes: torch.Tensor,
              keep: torch.Tensor, norm: Norm) -> torch.Tensor:
        """The step to the nearest linearised boundary, for the rows of ``keep``."""
        picked = logits.gather(1, classes)
        diffs = picked[:, 1:] - picked[:, :1]  # f_k = z_k - z_y, negative before success
        n_candidates = diffs.shape[1]
        shape = (-1, *([1] * (x_active.dim() - 1)))
        best_dist: torch.Tensor | None = None
        best_f = torch.zeros(int(keep.sum()), dtype=x_active.dtype, device=x_active.device)
        best_w = torch.zeros_like(x_active[keep])
        for j in range(n_candidates):
            # Rows are independent, so the gradient of the sum is every row's gradient.
            (grad,) = torch.autograd.grad(diffs[:, j].sum(), x_active,
                                          retain_graph=j < n_candidates - 1)
            w = grad[keep].detach()
            f = diffs[keep, j].detach().abs().to(x_active.dtype)
            flat = w.flatten(1)
            size = flat.abs().sum(dim=1) if norm is Norm.LINF else flat.norm(dim=1)
            dist = f / size.clamp_min(1e-12)
            if best_dist is None:
                better = torch.ones_like(dist, dtype=torch.bool)
                best_dist = dist
            else:
                better = dist < best_dist
                best_dist = torch.where(better, dist, best_dist)
            best_f = torch.where(better, f, best_f)
            best_w = torch.where(better.view(shape), w, best_w)
        flat = best_w.flatten(1)
        if norm is Norm.LINF:
            scale = (best_f + 1e-4) / flat.abs().sum(dim=1).clamp_min(1e-12)
            return scale.view(shape) * best_w.sign()
        scale = (best_f + 1e-4) / flat.pow(2).sum(dim=1).clamp_min(1e-24)
        return scale.view(shape) * best_w
