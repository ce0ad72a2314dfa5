"""Auto-PGD: APGD-CE, APGD-DLR and APGD-T.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020. PGD with momentum whose step size needs no tuning: it
starts at ``2 * eps`` and is halved at checkpoints where progress stalled, the iterate then
restarting from the best point found so far. Linf (signed steps) and L2 (normalised steps).

Our own implementation from the paper. The checkpoints sit at about ``p_j * steps`` with
``p_0 = 0``, ``p_1 = 0.22`` and ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``: the
first interval is ``int(0.22 * steps)`` steps, each next one ``int(0.03 * steps)`` shorter,
down to ``int(0.06 * steps)`` (all at least 1). At a checkpoint a sample's step size is
halved if (a) fewer than a fraction ``rho`` of its steps since the previous checkpoint
increased the loss, or (b) its step size was not halved at the previous checkpoint and its
best loss has not improved since then; it then restarts from its best point, with no
momentum. Steps: ``z = P(x_k + eta * sign(grad))`` (Linf) or ``P(x_k + eta * grad / |grad|)``
(L2), ``x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1}))`` (no momentum on the first
step), ``P`` the projection onto the threat model.

The attacks see the goal only through the objective (`robustbench_lite.tasks.objective`):
APGD-CE maximises its loss, APGD-DLR its DLR loss (capability ``dlr``), APGD-T runs toward
each of its class rounds (``class-rounds``) with their DLR loss. Each sample leaves the batch
at the first point that reaches the objective (that point is returned); a sample never
broken gets its highest-loss point. Restarts (and APGD-T's rounds) run only on the samples
not yet broken. Every run starts with one forward pass on the clean batch: samples whose
objective is reached already (misclassified ones, for classification) are returned as they
are and not attacked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.classification.objectives import (
    CLASS_ROUNDS,
    DLR,
    OffersClassRounds,
    OffersDLR,
)
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

#: Momentum weight of the paper (``alpha``; the first step takes none).
MOMENTUM = 0.75
#: First checkpoint, decrement of the checkpoint interval and its floor, as fractions of
#: the number of steps.
FIRST_CHECKPOINT = 0.22
INTERVAL_DECREMENT = 0.03
MIN_INTERVAL = 0.06

#: The loss one APGD run maximises: an objective's per-sample loss on the model's outputs.
LossFn = Callable[[Objective, torch.Tensor], torch.Tensor]


def dlr_of(objective: Objective, outputs: torch.Tensor) -> torch.Tensor:
    """The objective's DLR loss (capability ``dlr``: APGD-DLR and APGD-T)."""
    if not isinstance(objective, OffersDLR):
        raise AttackError(f"objective {objective.name!r} offers no DLR loss")
    return objective.dlr(outputs)


@dataclass(frozen=True)
class _State:
    """Per-sample tensors of the samples still being attacked (first dimension aligned)."""

    index: torch.Tensor  # position in the batch handed to `_apgd`
    goal: Objective
    x: torch.Tensor
    x_adv: torch.Tensor
    x_prev: torch.Tensor
    grad: torch.Tensor
    x_best: torch.Tensor
    grad_best: torch.Tensor
    loss_best: torch.Tensor
    loss_prev: torch.Tensor
    step: torch.Tensor
    increases: torch.Tensor
    reduced_last: torch.Tensor
    loss_best_last: torch.Tensor

    def keep(self, mask: torch.Tensor) -> _State:
        return replace(self, goal=self.goal.select(mask),
                       **{f.name: getattr(self, f.name)[mask] for f in fields(self)
                          if f.name != "goal"})


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _random_start(x: torch.Tensor, threat: ThreatModel,
                  generator: torch.Generator) -> torch.Tensor:
    """Uniform in the Linf ball; for L2 a uniformly random direction of length eps."""
    if threat.norm is Norm.LINF:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = (2 * noise - 1) * threat.eps
    else:
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        norms = direction.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = direction * _per_sample(threat.eps / norms, x)
    return threat.project(x + delta, x)


def _direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm is Norm.LINF:
        return grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / _per_sample(norms, grad)


def _evaluate(model: ModelFn, loss_fn: LossFn, goal: Objective, x_adv: torch.Tensor,
              need_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward (and backward, if ``need_grad``) pass: outputs, per-sample loss, gradient
    of the summed loss with respect to ``x_adv`` only."""
    if not need_grad:
        with torch.no_grad():
            outputs = model(x_adv)
            return outputs, loss_fn(goal, outputs), None
    x_req = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        outputs = model(x_req)
        loss = loss_fn(goal, outputs)
        (grad,) = torch.autograd.grad(loss.sum(), x_req)
    return outputs.detach(), loss.detach(), grad


@dataclass(frozen=True)
class _Outcome:
    x_adv: torch.Tensor
    broken: torch.Tensor
    loss: torch.Tensor


def _apgd(model: ModelFn, loss_fn: LossFn, objective: Objective, x: torch.Tensor,
          threat: ThreatModel, steps: int, rho: float, generator: torch.Generator) -> _Outcome:
    """One APGD run from a random start on every sample of ``x`` (``threat.eps > 0``),
    maximising ``loss_fn`` of ``objective`` until `Objective.success`."""
    out_x = x.clone()
    out_broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    out_loss = torch.full((len(x),), float("-inf"), dtype=x.dtype, device=x.device)

    x_adv = _random_start(x, threat, generator)
    outputs, loss, grad = _evaluate(model, loss_fn, objective, x_adv, steps > 0)
    assert grad is not None
    state = _State(
        index=torch.arange(len(x), device=x.device), goal=objective, x=x,
        x_adv=x_adv, x_prev=x_adv, grad=grad, x_best=x_adv, grad_best=grad,
        loss_best=loss, loss_prev=loss,
        step=torch.full((len(x),), 2 * threat.eps, dtype=x.dtype, device=x.device),
        increases=torch.zeros(len(x), dtype=torch.long, device=x.device),
        reduced_last=torch.zeros(len(x), dtype=torch.bool, device=x.device),
        loss_best_last=loss)
    interval = max(int(FIRST_CHECKPOINT * steps), 1)
    decrement = max(int(INTERVAL_DECREMENT * steps), 1)
    min_interval = max(int(MIN_INTERVAL * steps), 1)
    since_checkpoint = 0

    for i in range(steps + 1):
        if i > 0:
            with torch.no_grad():
                s = state
                alpha = MOMENTUM if i > 1 else 1.0
                step = _per_sample(s.step, s.x)
                z = threat.project(s.x_adv + step * _direction(s.grad, threat.norm), s.x)
                x_new = threat.project(
                    s.x_adv + alpha * (z - s.x_adv) + (1 - alpha) * (s.x_adv - s.x_prev), s.x)
            outputs, loss, new_grad = _evaluate(model, loss_fn, s.goal, x_new,
                                                need_grad=i < steps)
            with torch.no_grad():
                grad = s.grad if new_grad is None else new_grad
                improved = loss > s.loss_best
                wide = _per_sample(improved, s.x)
                state = replace(
                    s, x_prev=s.x_adv, x_adv=x_new, grad=grad,
                    x_best=torch.where(wide, x_new, s.x_best),
                    grad_best=torch.where(wide, grad, s.grad_best),
                    loss_best=torch.where(improved, loss, s.loss_best),
                    loss_prev=loss, increases=s.increases + (loss > s.loss_prev).long())
                since_checkpoint += 1
                if since_checkpoint == interval and i < steps:
                    state = _checkpoint(state, interval, rho)
                    since_checkpoint = 0
                    interval = max(interval - decrement, min_interval)
        with torch.no_grad():
            fooled = state.goal.success(outputs)
            if bool(fooled.any()):
                where = state.index[fooled]
                out_x[where] = state.x_adv[fooled]
                out_broken[where] = True
                out_loss[where] = state.loss_prev[fooled]
                state = state.keep(~fooled)
                if len(state.index) == 0:
                    break
    out_x[state.index] = state.x_best
    out_loss[state.index] = state.loss_best
    return _Outcome(out_x, out_broken, out_loss)


def _checkpoint(s: _State, interval: int, rho: float) -> _State:
    """Halve the step size where progress stalled and restart those samples from their best
    point (with no momentum)."""
    oscillating = s.increases.to(s.step.dtype) < rho * interval
    stalled = ~s.reduced_last & (s.loss_best <= s.loss_best_last)
    halve = oscillating | stalled
    wide = _per_sample(halve, s.x)
    x_adv = torch.where(wide, s.x_best, s.x_adv)
    return replace(
        s, step=torch.where(halve, s.step / 2, s.step), x_adv=x_adv,
        x_prev=torch.where(wide, s.x_best, s.x_prev),
        grad=torch.where(wide, s.grad_best, s.grad),
        loss_prev=torch.where(halve, s.loss_best, s.loss_prev),
        increases=torch.zeros_like(s.increases), reduced_last=halve,
        loss_best_last=s.loss_best)


class _APGDBase(Attack):
    norms = frozenset({Norm.LINF, Norm.L2})
    kind = AttackKind.GRADIENT

    def __init__(self, *, steps: int = 100, restarts: int = 1, rho: float = 0.75) -> None:
        if steps < 1 or restarts < 1 or not 0 < rho <= 1:
            raise AttackError(f"{self.name} needs steps >= 1, restarts >= 1 and "
                              "0 < rho <= 1")
        self.steps = steps
        self.restarts = restarts
        self.rho = rho
        self._set_params(steps=steps, restarts=restarts, rho=rho)

    def _loss(self, objective: Objective, outputs: torch.Tensor) -> torch.Tensor:
        """The per-sample loss each APGD run maximises (default: the objective's own)."""
        return objective.loss(outputs)

    def _rounds(self, clean_outputs: torch.Tensor, objective: Objective) -> list[Objective]:
        """The objectives to run in turn, each ``restarts`` times, on the samples not yet
        broken; each one's success implies ``objective``'s."""
        return [objective]

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        x = x.detach()
        x_out = x.clone()
        if threat.eps == 0 or len(x) == 0:
            return x_out
        with torch.no_grad():
            clean_outputs = model(x_out)
        broken = objective.success(clean_outputs)
        remaining = (~broken).nonzero().squeeze(1)
        best_loss = torch.full((len(x),), float("-inf"), dtype=x.dtype, device=x.device)
        for goal in self._rounds(clean_outputs, objective):
            for _ in range(self.restarts):
                if len(remaining) == 0:
                    return x_out
                outcome = _apgd(model, self._loss, goal.select(remaining), x[remaining],
                                threat, self.steps, self.rho, generator)
                better = outcome.broken | (outcome.loss > best_loss[remaining])
                chosen = remaining[better]
                x_out[chosen] = outcome.x_adv[better]
                best_loss[chosen] = outcome.loss[better]
                remaining = remaining[~outcome.broken]
        return x_out


class APGDCE(_APGDBase):
    """APGD-CE (Linf, L2): Auto-PGD on the objective's loss (Croce & Hein, ICML 2020); any
    task. For classification that is the cross-entropy of the true class (untargeted) or
    minus the cross-entropy of the target (targeted).

    Args:
        steps: gradient steps per restart (default 100).
        restarts: runs from independent random starts, each on the samples not yet broken
            (default 1).
        rho: at a checkpoint the step size is halved if fewer than this fraction of the steps
            since the last one increased the loss (default 0.75).

    Cost: about ``steps * restarts`` forward and backward passes per sample (fewer for
    samples broken early), plus one forward pass on the clean batch.
    """

    name = "apgd-ce"


class APGDDLR(_APGDBase):
    """APGD-DLR (Linf, L2): Auto-PGD on the difference-of-logits-ratio loss (Croce & Hein,
    ICML 2020), ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``, invariant to shifts and
    rescalings of the logits. Needs an objective offering ``dlr`` (classification, at least
    3 classes).

    Targeted objective: the targeted DLR loss ``-(z_o - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``
    toward the target ``t``, ``o`` being the strongest other class at each step (at least 4
    classes).

    Args:
        steps: gradient steps per restart (default 100).
        restarts: runs from independent random starts, each on the samples not yet broken
            (default 1).
        rho: at a checkpoint the step size is halved if fewer than this fraction of the steps
            since the last one increased the loss (default 0.75).

    Cost: about ``steps * restarts`` forward and backward passes per sample (fewer for
    samples broken early), plus one forward pass on the clean batch.
    """

    name = "apgd-dlr"
    requires = frozenset({DLR})

    def _loss(self, objective: Objective, outputs: torch.Tensor) -> torch.Tensor:
        return dlr_of(objective, outputs)


class APGDT(_APGDBase):
    """APGD-T (Linf, L2): AutoAttack's targeted Auto-PGD (Croce & Hein, ICML 2020). Needs an
    objective offering ``dlr`` and ``class-rounds`` (classification, at least 4 classes).

    Untargeted objective: for each of the ``n_target_classes`` classes with the highest clean
    logits other than the true one, in turn, runs APGD on the targeted DLR loss
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` toward that class, on the samples not yet
    misclassified. Targeted objective: one round, the same loss toward the given targets
    ``t``, with ``y`` the strongest other class at each step (as APGD-DLR).

    Args:
        steps: gradient steps per restart (default 100).
        restarts: runs from independent random starts per target class, each on the samples
            not yet broken (default 1).
        rho: at a checkpoint the step size is halved if fewer than this fraction of the steps
            since the last one increased the loss (default 0.75).
        n_target_classes: target classes tried on an untargeted objective, capped at the
            number of classes minus one (default 9).

    Cost: about ``steps * restarts * n_target_classes`` forward and backward passes per
    sample on an untargeted objective (``steps * restarts`` on a targeted one; fewer for
    samples broken early), plus one forward pass on the clean batch.
    """

    name = "apgd-t"
    requires = frozenset({DLR, CLASS_ROUNDS})

    def __init__(self, *, steps: int = 100, restarts: int = 1, rho: float = 0.75,
                 n_target_classes: int = 9) -> None:
        super().__init__(steps=steps, restarts=restarts, rho=rho)
        if n_target_classes < 1:
            raise AttackError("apgd-t needs n_target_classes >= 1")
        self.n_target_classes = n_target_classes
        self._set_params(steps=steps, restarts=restarts, rho=rho,
                         n_target_classes=n_target_classes)

    def _rounds(self, clean_outputs: torch.Tensor, objective: Objective) -> list[Objective]:
        if not isinstance(objective, OffersClassRounds):
            raise AttackError(f"apgd-t needs an objective offering {CLASS_ROUNDS}, not "
                              f"{objective.name!r}")
        return objective.rounds(clean_outputs, self.n_target_classes)

    def _loss(self, objective: Objective, outputs: torch.Tensor) -> torch.Tensor:
        return dlr_of(objective, outputs)


__all__ = ["APGDCE", "APGDDLR", "APGDT"]
