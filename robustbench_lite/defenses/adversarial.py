"""Adversarial training: FGSM training, fast (FGSM + random start) training, PGD training and
TRADES, for the Linf and L2 threat models.

All four train against perturbations found by projected gradient ascent on the input (one
shared loop, `robustbench_lite.defenses.inner.ascend`): they differ in the start point, the
number and size of the steps, the inner objective (cross-entropy, or TRADES's KL divergence)
and the outer loss. Every
iterate is projected onto the eps-ball around the clean batch and the pixel box [0, 1]
(`ThreatModel.project`); all random numbers come from the step's seeded generator.

Curriculum (all four, ``curriculum=c``): over the first fraction ``c`` of training (by
``step.progress``) the training radius grows linearly from ``eps / 10`` to ``eps``::

    eps_t = eps * min(1, 0.1 + 0.9 * progress / c)        (eps_t = eps when c = 0)

and the step sizes scale with it. It eases the first epochs of training from scratch; when
fine-tuning a model that is already accurate it is rarely needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional

from robustbench_lite.defenses.base import Defense, TrainingStep
from robustbench_lite.defenses.checking import (
    check_bool,
    check_eps,
    check_norm,
    check_number,
    check_steps,
)
from robustbench_lite.defenses.inner import (
    ascend,
    cross_entropy_objective,
    noise,
    uniform_start,
)
from robustbench_lite.errors import DefenseError
from robustbench_lite.threat import Norm, ThreatModel

#: Radius at the start of a curriculum, as a fraction of the target eps.
CURRICULUM_START = 0.1

#: Standard deviation of TRADES's Gaussian start (Zhang et al.'s reference code).
TRADES_START_STD = 0.001


class AdversarialTraining(Defense):
    """What the four adversarial-training defenses share: the threat model (``norm``,
    ``eps``) and the curriculum on eps."""

    norm: Norm
    eps: float
    curriculum: float

    def _init_threat(self, norm: str, eps: float, curriculum: float,
                     **params: Any) -> None:
        """Check and store ``norm``, ``eps``, ``curriculum`` and the subclass's (already
        checked) ``params``, in the order users see them in ``repr``."""
        self.norm = check_norm(self.name, norm)
        self.eps = check_eps(self.name, self.norm, eps)
        self.curriculum = check_number(self.name, "curriculum", curriculum,
                                       lambda v: 0 <= v < 1, "a number with "
                                       "0 <= curriculum < 1 (0: no ramp)")
        self._set_params(norm=self.norm.value, eps=self.eps, **params,
                         curriculum=self.curriculum)

    def epsilon(self, progress: float) -> float:
        """The training radius at ``progress`` (0 to 1): ``eps`` ramped linearly from
        ``eps / 10`` over the first ``curriculum`` of training, then ``eps``."""
        if self.curriculum == 0:
            return self.eps
        ramp = max(progress, 0.0) / self.curriculum
        return self.eps * min(1.0, CURRICULUM_START + (1 - CURRICULUM_START) * ramp)

    def threat(self, progress: float) -> ThreatModel:
        """The threat model trained against at ``progress``."""
        return ThreatModel(self.norm, self.epsilon(progress))


def pair_of_logits(name: str, adversarial_logits: torch.Tensor | None) -> torch.Tensor:
    if adversarial_logits is None:
        raise DefenseError(f"`defense` {name} defines its loss on the clean and the perturbed "
                           "batch; it must perturb the batch itself (use compose())")
    return adversarial_logits


def mixed_loss(name: str, alpha: float, step: TrainingStep, logits: torch.Tensor,
               adversarial_logits: torch.Tensor | None) -> torch.Tensor:
    """Goodfellow et al.'s mixed objective ``alpha * CE(clean) + (1 - alpha) * CE(adv)``."""
    adversarial = pair_of_logits(name, adversarial_logits)
    return (alpha * functional.cross_entropy(logits, step.y)
            + (1 - alpha) * functional.cross_entropy(adversarial, step.y))


# ---------------------------------------------------------------- the defenses


class FGSMAT(AdversarialTraining):
    """FGSM adversarial training (``fgsm-at``), Linf or L2.

    Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR
    2015. The batch is perturbed by one step of size eps along the sign of the input
    gradient (Linf) or its unit-L2 direction (L2), from the clean point (no random start),
    projected onto the pixel box; the objective mixes the clean and the adversarial loss::

        x_adv = x + eps * sign(grad_x CE(f(x), y))
        loss  = alpha * CE(f(x), y) + (1 - alpha) * CE(f(x_adv), y)

    Without a random start single-step training is prone to catastrophic overfitting (the
    model learns to mask the one gradient step); prefer ``fast-at`` or ``pgd-at``.

    Args:
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: training radius (default 0.1, the digits Linf standard), > 0 and <= 1 for
            Linf; text such as ``"8/255"`` is read as a fraction.
        alpha: weight of the clean loss, 0 <= alpha <= 1 (default 0.5, as in the paper).
        curriculum: fraction of training over which eps ramps up from eps / 10,
            0 <= curriculum < 1 (default 0: no ramp).

    Cost per step: 1 forward and 1 backward pass for the perturbation, then 2 forward and 2
    backward passes for the loss (about 3x plain training).
    """

    name = "fgsm-at"

    def __init__(self, *, norm: str = "linf", eps: float = 0.1, alpha: float = 0.5,
                 curriculum: float = 0.0) -> None:
        self.alpha = check_number(self.name, "alpha", alpha, lambda v: 0 <= v <= 1,
                                  "a number with 0 <= alpha <= 1")
        self._init_threat(norm, eps, curriculum, alpha=self.alpha)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        threat = self.threat(step.progress)
        return ascend(cross_entropy_objective(step), step.x, step.x, threat,
                      step_size=threat.eps, steps=1)

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        return mixed_loss(self.name, self.alpha, step, logits, adversarial_logits)


class FastAT(AdversarialTraining):
    """Fast adversarial training (``fast-at``), Linf or L2.

    Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training", ICLR
    2020. One gradient step from a uniformly random point of the eps-ball, of size
    ``step_ratio * eps`` (1.25 eps in the paper), projected back onto the ball and the pixel
    box; the model is trained on the cross-entropy of the perturbed batch only::

        x_0   = x + uniform(eps-ball)
        x_adv = proj(x_0 + step_ratio * eps * sign(grad_x CE(f(x_0), y)))
        loss  = CE(f(x_adv), y)

    (L2: the unit-L2 gradient instead of its sign, and a start uniform in the L2 ball.)
    Another defense may own the loss (``label-smoothing``); it then applies to x_adv.

    Args:
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: training radius (default 0.1, the digits Linf standard), > 0 and <= 1 for
            Linf; text such as ``"8/255"`` is read as a fraction.
        step_ratio: step size as a multiple of eps, > 0 (default 1.25).
        curriculum: fraction of training over which eps ramps up from eps / 10,
            0 <= curriculum < 1 (default 0: no ramp).

    Cost per step: 1 forward and 1 backward pass for the perturbation, 1 forward and 1
    backward pass for the loss (about 2x plain training).
    """

    name = "fast-at"

    def __init__(self, *, norm: str = "linf", eps: float = 0.1, step_ratio: float = 1.25,
                 curriculum: float = 0.0) -> None:
        self.step_ratio = check_number(self.name, "step_ratio", step_ratio,
                                       lambda v: v > 0, "a number > 0")
        self._init_threat(norm, eps, curriculum, step_ratio=self.step_ratio)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        threat = self.threat(step.progress)
        start = uniform_start(step.x, threat, step.generator)
        return ascend(cross_entropy_objective(step), step.x, start, threat,
                      step_size=self.step_ratio * threat.eps, steps=1)


class PGDAT(AdversarialTraining):
    """PGD adversarial training (``pgd-at``), Linf or L2.

    Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018. The saddle-point objective
    ``min_theta E[max_{||delta|| <= eps} CE(f(x + delta), y)]``, its inner maximum
    approximated by PGD: from a uniformly random point of the eps-ball (or the clean point),
    ``steps`` steps of size ``step_ratio * eps / steps`` along the gradient sign (Linf) or the
    per-sample unit-L2 gradient (L2), each projected onto the ball and the pixel box; then::

        loss = CE(f(x_adv), y)

    Another defense may own the loss (``label-smoothing``); it then applies to x_adv.

    Args:
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: training radius (default 0.1, the digits Linf standard), > 0 and <= 1 for
            Linf; text such as ``"8/255"`` is read as a fraction.
        steps: PGD steps, an integer >= 1 (default 7).
        step_ratio: total step length as a multiple of eps, > 0 (default 2.5: each step is
            2.5 * eps / steps, Madry et al.'s rule of thumb).
        random_start: start uniformly inside the ball (default True).
        curriculum: fraction of training over which eps ramps up from eps / 10,
            0 <= curriculum < 1 (default 0: no ramp).

    Cost per step: ``steps`` forward and backward passes for the perturbation, 1 forward and
    1 backward pass for the loss (``steps + 1`` times plain training; 8x by default).
    """

    name = "pgd-at"

    def __init__(self, *, norm: str = "linf", eps: float = 0.1, steps: int = 7,
                 step_ratio: float = 2.5, random_start: bool = True,
                 curriculum: float = 0.0) -> None:
        self.steps = check_steps(self.name, steps)
        self.step_ratio = check_number(self.name, "step_ratio", step_ratio,
                                       lambda v: v > 0, "a number > 0")
        self.random_start = check_bool(self.name, "random_start", random_start)
        self._init_threat(norm, eps, curriculum, steps=self.steps, step_ratio=self.step_ratio,
                          random_start=self.random_start)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        threat = self.threat(step.progress)
        start = (uniform_start(step.x, threat, step.generator) if self.random_start
                 else step.x)
        return ascend(cross_entropy_objective(step), step.x, start, threat,
                      step_size=self.step_ratio * threat.eps / self.steps, steps=self.steps)


class TRADES(AdversarialTraining):
    """TRADES (``trades``), Linf or L2.

    Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off between
    Robustness and Accuracy", ICML 2019. The inner maximisation moves the input to where the
    model's prediction differs most from its clean one, from ``x + 0.001 * N(0, 1)``, by
    ``steps`` projected steps of size ``step_ratio * eps / steps`` (sign for Linf, unit-L2
    for L2)::

        x_adv = argmax_{x' in ball} KL(softmax f(x) || softmax f(x'))
        loss  = CE(f(x), y) + beta * sum_i KL(softmax f(x_i) || softmax f(x_adv_i)) / batch

    The clean probabilities are held fixed during the inner maximisation; in the loss the
    gradient flows through both terms, as in the reference implementation. TRADES owns the
    loss: it cannot be combined with another defense that defines the loss.

    Args:
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: training radius (default 0.1, the digits Linf standard), > 0 and <= 1 for
            Linf; text such as ``"8/255"`` is read as a fraction.
        steps: inner steps, an integer >= 1 (default 7).
        step_ratio: total step length as a multiple of eps, > 0 (default 2.5).
        beta: weight of the robustness (KL) term, > 0 (default 6.0, the paper's choice).
        curriculum: fraction of training over which eps ramps up from eps / 10,
            0 <= curriculum < 1 (default 0: no ramp).

    Cost per step: 1 forward pass (clean probabilities) and ``steps`` forward and backward
    passes for the perturbation, then 2 forward and 2 backward passes for the loss
    (``steps + 3`` times plain training; 10x by default).
    """

    name = "trades"

    def __init__(self, *, norm: str = "linf", eps: float = 0.1, steps: int = 7,
                 step_ratio: float = 2.5, beta: float = 6.0,
                 curriculum: float = 0.0) -> None:
        self.steps = check_steps(self.name, steps)
        self.step_ratio = check_number(self.name, "step_ratio", step_ratio,
                                       lambda v: v > 0, "a number > 0")
        self.beta = check_number(self.name, "beta", beta, lambda v: v > 0, "a number > 0")
        self._init_threat(norm, eps, curriculum, steps=self.steps, step_ratio=self.step_ratio,
                          beta=self.beta)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        threat = self.threat(step.progress)
        with torch.no_grad():
            clean = functional.softmax(step.model(step.x), dim=1)

        def divergence(x_adv: torch.Tensor) -> torch.Tensor:
            log_adversarial = functional.log_softmax(step.model(x_adv), dim=1)
            return functional.kl_div(log_adversarial, clean, reduction="sum")

        start = threat.project(
            step.x + TRADES_START_STD * noise("normal", step.x, step.generator), step.x)
        return ascend(divergence, step.x, start, threat,
                      step_size=self.step_ratio * threat.eps / self.steps, steps=self.steps)

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        adversarial = pair_of_logits(self.name, adversarial_logits)
        robust = functional.kl_div(functional.log_softmax(adversarial, dim=1),
                                   functional.softmax(logits, dim=1), reduction="batchmean")
        return functional.cross_entropy(logits, step.y) + self.beta * robust


#: The adversarial-training defenses, for ``register_defenses``.
ADVERSARIAL_DEFENSES: tuple[type[Defense], ...] = (FGSMAT, FastAT, PGDAT, TRADES)
