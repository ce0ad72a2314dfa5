"""Defensive distillation: a student trained at a high softmax temperature on a teacher's
soft labels, deployed at temperature 1."""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.nn import functional

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.base import Defense, DefenseContext, TrainingStep
from robustbench_lite.defenses.checking import check_number
from robustbench_lite.errors import DefenseError
from robustbench_lite.training.loop import accuracy

logger = logging.getLogger(__name__)

#: Training samples on which the teacher's accuracy is checked before distilling.
TEACHER_CHECK_SAMPLES = 512

#: Below this training accuracy the starting model is no teacher (an untrained network).
TEACHER_MIN_ACCURACY = 0.5


class DefensiveDistillation(Defense):
    """Defensive distillation (``distillation``).

    Papernot, McDaniel, Wu, Jha & Swami, "Distillation as a Defense to Adversarial
    Perturbations against Deep Neural Networks", IEEE S&P 2016. A teacher trained with its
    softmax at temperature ``T`` labels the training data with its probabilities; a student
    of the same architecture is trained at temperature ``T`` on those soft labels and
    deployed at temperature 1, where its logits are about ``T`` times larger than needed::

        soft  = teacher probabilities of x
        loss  = - sum_k soft_k * log softmax(f(x) / T)_k

    The teacher is the model harden starts from, frozen (a copy taken in
    ``transform_model``; the network trained is the starting model itself, fine-tuned
    rather than trained afresh). Papernot et al. train the teacher at ``T``; a network
    trained at ``T`` is one trained at 1 with its logits multiplied by ``T``, so its soft
    labels at ``T`` are the starting model's ordinary probabilities, which is what is used.
    (Soft labels ``softmax(teacher / T)`` of a teacher trained at 1 would just be matched by
    the unchanged starting model.) With a perturbing defense next to it, the student's
    logits are those of the perturbed batch and the teacher labels the clean one.

    At deployment the softmax saturates: in float32 the cross-entropy's input gradient
    underflows to exactly zero, so naive gradient attacks fail. That is gradient masking,
    not robustness (Carlini & Wagner, "Defensive Distillation is Not Robust to Adversarial
    Examples", 2016): attacks on logits divided by their scale break it, which the audit's
    input-gradient check switches on (+rescaled cells).

    Args:
        temperature: the training temperature ``T`` > 1 and <= 1000 (default 100: Papernot
            et al. sweep T from 1 to 100 and report their lowest adversarial success rates
            at the high end; Carlini & Wagner evaluate T = 100).

    The starting model must be a trained classifier (at least 50% accurate on the training
    data; not ``--from-scratch``). Cost per step: one extra forward pass of the teacher.
    The saved model is the student, of the starting architecture.
    """

    name = "distillation"

    def __init__(self, *, temperature: float = 100.0) -> None:
        self.temperature = check_number(self.name, "temperature", temperature,
                                        lambda v: 1 < v <= 1000,
                                        "a number with 1 < temperature <= 1000")
        self._set_params(temperature=self.temperature)
        self.teacher: nn.Module | None = None
        self._data: EvalData | None = None

    def prepare(self, context: DefenseContext) -> None:
        self._data = context.data

    def transform_model(self, module: nn.Module) -> nn.Module:
        """Keep a frozen copy of ``module`` as the teacher; ``module`` itself is trained."""
        teacher = copy.deepcopy(module).eval()
        teacher.requires_grad_(False)
        if self._data is not None and next(teacher.parameters(), None) is not None:
            sample = self._data.take(torch.arange(min(len(self._data.x),
                                                      TEACHER_CHECK_SAMPLES)),
                                     f"{self._data.name} (teacher check)")
            score = accuracy(teacher, sample)
            if score < TEACHER_MIN_ACCURACY:
                raise DefenseError(f"`defense` {self.name} distils the model harden starts "
                                   f"from, which classifies only {score:.0%} of the training "
                                   "data; start from a trained model (drop `from_scratch`)")
            logger.info("distillation teacher: %.1f%% of %d training samples", 100 * score,
                        len(sample.x))
        self.teacher = teacher
        return module

    def soft_labels(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's probabilities for ``x`` (see the class docstring)."""
        if self.teacher is None:
            raise DefenseError(f"`defense` {self.name} has no teacher yet; apply the recipe's "
                               "transform to the starting model before training")
        with torch.no_grad():
            return functional.softmax(self.teacher(x), dim=1)

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        log_student = functional.log_softmax(logits / self.temperature, dim=1)
        return -(self.soft_labels(step.x) * log_student).sum(dim=1).mean()
