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

Each sample leaves the batch at the first point that fools the model (that point is returned);
a sample never fooled gets its highest-loss point. Restarts (and APGD-T's target classes) run
only on the samples not yet broken. Every run starts with one forward pass on the clean batch:
samples misclassified already are returned as they are and not attacked.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import ClassVar

import torch
from torch.nn import functional

from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.attacks.losses import dlr_loss, strongest_other, targeted_dlr_loss
from robustbench_lite.errors import AttackError
from robustbench_lite.threat import Norm, ThreatModel

#: Momentum weight of the paper (``alpha``; the first step takes none).
MOMENTUM = 0.75
#: First checkpoint, decrement of the checkpoint interval and its floor, as fractions of
#: the number of steps.
FIRST_CHECKPOINT = 0.22
INTERVAL_DECREMENT = 0.03
MIN_INTERVAL = 0.06
class _Loss(str, Enum):
    CE = "ce"
    DLR = "dlr"


class _Goal(str, Enum):
    #: Leave ``labels`` (the true class); the loss pushes away from it.
    UNTARGETED = "untargeted"
    #: Reach ``targets`` (a targeted threat: the true class is unknown).
    TARGETED = "targeted"
    #: Leave ``labels`` by pushing toward ``targets`` (APGD-T on an untargeted threat).
    TOWARD = "toward"


@dataclass(frozen=True)
class _Objective:
    loss: _Loss
    goal: _Goal

    def value(self, logits: torch.Tensor, labels: torch.Tensor,
              targets: torch.Tensor) -> torch.Tensor:
        """Per-sample loss to maximise."""
        if self.goal is _Goal.UNTARGETED:
            if self.loss is _Loss.CE:
                return functional.cross_entropy(logits, labels, reduction="none")
            return dlr_loss(logits, labels)
        if self.loss is _Loss.CE:
            if self.goal is _Goal.TARGETED:
                return -functional.cross_entropy(logits, targets, reduction="none")
            raise AttackError("APGD toward a target class uses the DLR loss")
        if self.goal is _Goal.TARGETED:
            # The true class is unknown: push the target above the strongest other class.
            labels = strongest_other(logits.detach(), targets)
        return targeted_dlr_loss(logits, labels, targets)

    def success(self, logits: torch.Tensor, labels: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        predicted = logits.argmax(dim=1)
        return predicted == targets if self.goal is _Goal.TARGETED else predicted != labels


@dataclass(frozen=True)
class _State:
    """Per-sample tensors of the samples still being attacked (first dimension aligned)."""

    index: torch.Tensor  # position in the batch handed to `_apgd`
    x: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
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
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in fields(self)})


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


def _evaluate(model: LogitsFn, objective: _Objective, x_adv: torch.Tensor,
              labels: torch.Tensor, targets: torch.Tensor,
              need_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward (and backward, if ``need_grad``) pass: logits, per-sample loss, gradient
    of the summed loss with respect to ``x_adv`` only."""
    if not need_grad:
        with torch.no_grad():
            logits = model(x_adv)
            return logits, objective.value(logits, labels, targets), None
    x_req = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_req)
        loss = objective.value(logits, labels, targets)
        (grad,) = torch.autograd.grad(loss.sum(), x_req)
    return logits.detach(), loss.detach(), grad


@dataclass(frozen=True)
class _Outcome:
    x_adv: torch.Tensor
    broken: torch.Tensor
    loss: torch.Tensor


def _apgd(model: LogitsFn, objective: _Objective, x: torch.Tensor, labels: torch.Tensor,
          targets: torch.Tensor, threat: ThreatModel, steps: int, rho: float,
          generator: torch.Generator) -> _Outcome:
    """One APGD run from a random start on every sample of ``x`` (``threat.eps > 0``)."""
    out_x = x.clone()
    out_broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    out_loss = torch.full((len(x),), float("-inf"), dtype=x.dtype, device=x.device)

    x_adv = _random_start(x, threat, generator)
    logits, loss, grad = _evaluate(model, objective, x_adv, labels, targets, steps > 0)
    assert grad is not None
    state = _State(
        index=torch.arange(len(x), device=x.device), x=x, labels=labels, targets=targets,
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
            logits, loss, new_grad = _evaluate(model, objective, x_new, s.labels, s.targets,
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
            fooled = objective.success(logits, state.labels, state.targets)
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
    supports_targeted = True
    _loss: ClassVar[_Loss]

    def __init__(self, *, steps: int = 100, restarts: int = 1, rho: float = 0.75) -> None:
        if steps < 1 or restarts < 1 or not 0 < rho <= 1:
            raise AttackError(f"{self.name} needs steps >= 1, restarts >= 1 and "
                              "0 < rho <= 1")
        self.steps = steps
        self.restarts = restarts
        self.rho = rho
        self._set_params(steps=steps, restarts=restarts, rho=rho)

    def _rounds(self, clean_logits: torch.Tensor, y: torch.Tensor,
                threat: ThreatModel) -> list[tuple[_Objective, torch.Tensor]]:
        """The (objective, per-sample target) pairs to run in turn, each ``restarts`` times."""
        goal = _Goal.TARGETED if threat.targeted else _Goal.UNTARGETED
        return [(_Objective(self._loss, goal), y)]

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        x = x.detach()
        x_out = x.clone()
        if threat.eps == 0 or len(x) == 0:
            return x_out
        with torch.no_grad():
            clean_logits = model(x_out)
        goal = _Goal.TARGETED if threat.targeted else _Goal.UNTARGETED
        broken = _Objective(self._loss, goal).success(clean_logits, y, y)
        remaining = (~broken).nonzero().squeeze(1)
        best_loss = torch.full((len(x),), float("-inf"), dtype=x.dtype, device=x.device)
        for objective, targets in self._rounds(clean_logits, y, threat):
            for _ in range(self.restarts):
                if len(remaining) == 0:
                    return x_out
                outcome = _apgd(model, objective, x[remaining], y[remaining],
                                targets[remaining], threat, self.steps, self.rho, generator)
                better = outcome.broken | (outcome.loss > best_loss[remaining])
                chosen = remaining[better]
                x_out[chosen] = outcome.x_adv[better]
                best_loss[chosen] = outcome.loss[better]
                remaining = remaining[~outcome.broken]
        return x_out


class APGDCE(_APGDBase):
    """APGD-CE (Linf, L2): Auto-PGD on the cross-entropy loss (Croce & Hein, ICML 2020).

    Untargeted: maximises the cross-entropy of the true class. Targeted threat: minimises the
    cross-entropy of the target class.

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
    _loss = _Loss.CE


class APGDDLR(_APGDBase):
    """APGD-DLR (Linf, L2): Auto-PGD on the difference-of-logits-ratio loss (Croce & Hein,
    ICML 2020), ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``, invariant to shifts and
    rescalings of the logits. Needs at least 3 classes.

    Targeted threat: the targeted DLR loss ``-(z_o - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``
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
    _loss = _Loss.DLR


class APGDT(_APGDBase):
    """APGD-T (Linf, L2): AutoAttack's targeted Auto-PGD (Croce & Hein, ICML 2020).

    Untargeted threat: for each of the ``n_target_classes`` classes with the highest clean
    logits other than the true one, in turn, runs APGD on the targeted DLR loss
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` toward that class, on the samples not yet
    misclassified. Targeted threat: the same loss toward the given targets ``t``, with ``y``
    the strongest other class at each step (as APGD-DLR). Needs at least 4 classes.

    Args:
        steps: gradient steps per restart (default 100).
        restarts: runs from independent random starts per target class, each on the samples
            not yet broken (default 1).
        rho: at a checkpoint the step size is halved if fewer than this fraction of the steps
            since the last one increased the loss (default 0.75).
        n_target_classes: target classes tried on an untargeted threat, capped at the number
            of classes minus one (default 9).

    Cost: about ``steps * restarts * n_target_classes`` forward and backward passes per
    sample on an untargeted threat (``steps * restarts`` on a targeted one; fewer for samples
    broken early), plus one forward pass on the clean batch.
    """

    name = "apgd-t"
    _loss = _Loss.DLR

    def __init__(self, *, steps: int = 100, restarts: int = 1, rho: float = 0.75,
                 n_target_classes: int = 9) -> None:
        super().__init__(steps=steps, restarts=restarts, rho=rho)
        if n_target_classes < 1:
            raise AttackError("apgd-t needs n_target_classes >= 1")
        self.n_target_classes = n_target_classes
        self._set_params(steps=steps, restarts=restarts, rho=rho,
                         n_target_classes=n_target_classes)

    def _rounds(self, clean_logits: torch.Tensor, y: torch.Tensor,
                threat: ThreatModel) -> list[tuple[_Objective, torch.Tensor]]:
        if clean_logits.shape[1] < 4:
            raise AttackError("apgd-t needs a model with at least 4 classes")
        if threat.targeted:
            return [(_Objective(_Loss.DLR, _Goal.TARGETED), y)]
        count = min(self.n_target_classes, clean_logits.shape[1] - 1)
        others = clean_logits.scatter(1, y[:, None], float("-inf"))
        ranked = others.topk(count, dim=1).indices
        toward = _Objective(_Loss.DLR, _Goal.TOWARD)
        return [(toward, ranked[:, j]) for j in range(count)]


__all__ = ["APGDCE", "APGDDLR", "APGDT", "dlr_loss", "targeted_dlr_loss"]
