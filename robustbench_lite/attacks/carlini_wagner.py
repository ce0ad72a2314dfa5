"""Carlini & Wagner L2.

Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.
Minimises ``||x' - x||_2^2 + c * f(x')`` with Adam over ``w``, where ``x' = (tanh(w) + 1) / 2``
keeps the example inside the pixel box, and ``f`` is the margin loss
``max(z_y - max_{i != y} z_i, -confidence)`` (targeted: ``max(max_{i != t} z_i - z_t,
-confidence)``). The trade-off constant ``c`` is found per sample by binary search; the
smallest adversarial example met at any step is kept.
Cost: ``binary_search_steps * steps`` forward and backward passes per sample (fewer with
``abort_early``).
"""

from __future__ import annotations

import torch

from robustbench_lite.attacks._classes import (
    class_goal,
    labels_or_targets_reason,
    targets_first,
)
from robustbench_lite.attacks.base import MinimumNormAttack
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm

#: Keeps ``2x - 1`` strictly inside (-1, 1) so that ``atanh`` is finite at pixels 0 and 1.
_TANH_SCALE = 1 - 1e-6
#: Upper bound on the constant standing for "no successful constant known yet".
_NO_UPPER = 1e10


class CarliniWagnerL2(MinimumNormAttack):
    """Carlini & Wagner (L2), untargeted or targeted, minimum-norm. Serves objectives
    offering ``targets`` (it reaches them) or ``labels`` (it leaves them).

    Args:
        binary_search_steps: outer steps of the per-sample binary search on ``c`` (default
            9). While no adversarial example was found for a sample, its ``c`` is multiplied
            by 10; afterwards it is bisected.
        steps: Adam steps per binary-search step (default 100). The paper uses up to 10000;
            more steps give smaller distances at a proportional cost.
        learning_rate: Adam step size in ``w`` space (default 0.01).
        initial_const: starting value of ``c`` (default 1e-3, as in the paper's code; the
            binary search raises it by decades as needed, so a small start costs only outer
            steps and avoids starting with needlessly large perturbations).
        confidence: margin ``kappa`` by which the example must be misclassified (default 0).
        abort_early: stop a binary-search step when the loss has not decreased by 0.01 % over
            the last ``steps // 10`` steps (default True).

    Cost: at most ``binary_search_steps * steps`` forward and backward passes over the batch.
    Randomness: none (``generator`` is unused).
    """

    name = "cw-l2"
    norms = frozenset({Norm.L2})

    def __init__(self, *, binary_search_steps: int = 9, steps: int = 100,
                 learning_rate: float = 0.01, initial_const: float = 1e-3,
                 confidence: float = 0.0, abort_early: bool = True) -> None:
        if binary_search_steps < 1 or steps < 1:
            raise AttackError("cw-l2 needs binary_search_steps >= 1 and steps >= 1")
        if learning_rate <= 0 or initial_const <= 0 or confidence < 0:
            raise AttackError("cw-l2 needs learning_rate > 0, initial_const > 0 and "
                              "confidence >= 0")
        self.binary_search_steps = binary_search_steps
        self.steps = steps
        self.learning_rate = learning_rate
        self.initial_const = initial_const
        self.confidence = confidence
        self.abort_early = abort_early
        self._set_params(binary_search_steps=binary_search_steps, steps=steps,
                         learning_rate=learning_rate, initial_const=initial_const,
                         confidence=confidence, abort_early=abort_early)

    def serves(self, objective: type[Objective]) -> bool:
        return targets_first(objective.offers) is not None

    def unserved_reason(self, objective: type[Objective]) -> str:
        return labels_or_targets_reason(self.name, objective)

    def find_minimal(self, model: ModelFn, x: torch.Tensor, objective: Objective, norm: Norm,
                     generator: torch.Generator) -> torch.Tensor:
        if norm not in self.norms:
            raise AttackError(f"cw-l2 supports l2 only, not {norm.value}")
        goal = class_goal(objective, self.name)
        return self.minimise(model, x, goal.classes, targeted=goal.targeted)

    def minimise(self, model: ModelFn, x: torch.Tensor, y: torch.Tensor, *,
                 targeted: bool = False) -> torch.Tensor:
        """Smallest adversarial examples found for ``x`` (``y``: true labels, or target
        labels when ``targeted``); ``x`` itself where none was found."""
        x = x.detach()
        best = x.clone()
        n = len(x)
        if n == 0:
            return best
        y = y.to(x.device)
        shape = (-1, *([1] * (x.dim() - 1)))
        best_l2 = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        w_start = torch.atanh(((2 * x - 1) * _TANH_SCALE).clamp(-_TANH_SCALE, _TANH_SCALE))
        const = torch.full((n,), self.initial_const, dtype=x.dtype, device=x.device)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, _NO_UPPER)
        check_every = max(1, -(-self.steps // 10))

        for outer in range(self.binary_search_steps):
            if self.binary_search_steps >= 10 and outer == self.binary_search_steps - 1:
                # As in the paper's code: the last step uses the best constant known.
                const = torch.minimum(upper, torch.full_like(upper, _NO_UPPER))
            w = w_start.clone().requires_grad_(True)
            optimiser = torch.optim.Adam([w], lr=self.learning_rate)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            previous = float("inf")
            for step in range(self.steps):
                x_new = (torch.tanh(w) + 1) / 2
                logits = model(x_new)
                margin, is_adv = self._margin(logits, y, targeted)
                l2_sq = (x_new - x).flatten(1).pow(2).sum(dim=1)
                loss = (l2_sq + const * margin.clamp_min(-self.confidence).to(x.dtype)).sum()
                with torch.no_grad():
                    l2 = l2_sq.detach().sqrt()
                    improved = is_adv & (l2 < best_l2)
                    best_l2 = torch.where(improved, l2, best_l2)
                    best = torch.where(improved.view(shape), x_new.detach(), best)
                    succeeded |= is_adv
                (grad,) = torch.autograd.grad(loss, w)
                w.grad = grad
                optimiser.step()
                if self.abort_early and step % check_every == 0:
                    value = float(loss.detach())
                    if not value <= 0.9999 * previous:
                        break
                    previous = value
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            bisect = (lower + upper) / 2
            const = torch.where(upper < _NO_UPPER, bisect, const * 10)
        return best

    def _margin(self, logits: torch.Tensor, y: torch.Tensor,
                targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``f`` before the ``-confidence`` clamp, and whether each row is adversarial with
        the required confidence."""
        label = logits.gather(1, y.view(-1, 1)).squeeze(1)
        others = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(dim=1)
        detached = logits.detach()
        if targeted:
            shifted = detached.scatter_add(
                1, y.view(-1, 1), torch.full_like(detached[:, :1], -self.confidence))
            return others - label, shifted.argmax(dim=1) == y
        shifted = detached.scatter_add(
            1, y.view(-1, 1), torch.full_like(detached[:, :1], self.confidence))
        return label - others, shifted.argmax(dim=1) != y
