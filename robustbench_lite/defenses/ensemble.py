"""Ensemble adversarial training: adversarial examples crafted on other, fixed models as well
as on the model being trained."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from robustbench_lite.defenses.adversarial import AdversarialTraining, mixed_loss
from robustbench_lite.defenses.base import DefenseContext, TrainingStep
from robustbench_lite.defenses.checking import check_number, check_steps
from robustbench_lite.defenses.inner import ascend, uniform_start
from robustbench_lite.errors import DefenseError, RobustbenchError

logger = logging.getLogger(__name__)

#: Separates the static models in ``models=`` (a comma would end the parameter).
MODEL_SEPARATOR = "+"


def _objective(source: nn.Module, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The summed cross-entropy of ``source``, whose input gradient the ascent follows."""

    def objective(x_adv: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(source(x_adv), y, reduction="sum")
    return objective


class EnsembleAT(AdversarialTraining):
    """Ensemble adversarial training (``ensemble-at``), Linf or L2.

    Tramèr, Kurakin, Papernot, Goodfellow, Boneh & McDaniel, "Ensemble Adversarial Training:
    Attacks and Defenses", ICLR 2018. Each training batch is perturbed on a source drawn
    uniformly (from the run's seeded generator) among the model being trained and the
    static ``models``, which are never trained. Crafting examples on other models decouples
    them from the trained model's own gradient, so it cannot learn to mask that gradient,
    and it trains against the transferred examples a black-box attacker would use. The
    objective mixes the clean and the adversarial loss as in the paper::

        source ~ uniform{f, g_1, ..., g_k}
        x_adv  = PGD on CE(source(x), y) (steps = 1: FGSM from the clean point)
        loss   = alpha * CE(f(x), y) + (1 - alpha) * CE(f(x_adv), y)

    Args:
        models: the static models, joined by ``+``: files ``robust audit`` opens without
            further options (TorchScript; safetensors written by ``robust train`` or
            ``robust harden``, which name their architecture) or bundled model names,
            e.g. ``models=surrogate.pt+digits-cnn``. Required. They must take the same
            inputs and classes as the trained model.
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: training radius (default 0.1, the digits Linf standard).
        steps: ascent steps, an integer >= 1 (default 1: FGSM, as in the paper; more steps
            start uniformly in the ball and take steps of 2.5 * eps / steps).
        alpha: weight of the clean loss, 0 <= alpha <= 1 (default 0.5).
        curriculum: fraction of training over which eps ramps up from eps / 10,
            0 <= curriculum < 1 (default 0: no ramp).

    Cost per step: ``steps`` forward and backward passes of the chosen source, then 2
    forward and 2 backward passes for the loss.
    """

    name = "ensemble-at"

    def __init__(self, *, models: str = "", norm: str = "linf", eps: float = 0.1,
                 steps: int = 1, alpha: float = 0.5, curriculum: float = 0.0) -> None:
        if not isinstance(models, str):
            raise DefenseError(f"`defense` {self.name}: models must be model files or names "
                               f"joined by '{MODEL_SEPARATOR}', got {models!r}")
        self.models = tuple(part.strip() for part in models.split(MODEL_SEPARATOR)
                            if part.strip())
        self.steps = check_steps(self.name, steps)
        self.alpha = check_number(self.name, "alpha", alpha, lambda v: 0 <= v <= 1,
                                  "a number with 0 <= alpha <= 1")
        self._init_threat(norm, eps, curriculum, models=MODEL_SEPARATOR.join(self.models),
                          steps=self.steps, alpha=self.alpha)
        self.static: list[nn.Module] = []
        self.static_sha256: list[str] = []

    def fingerprint(self) -> str:
        """The parameters and the sha256 of every static model file opened by `prepare`."""
        return f"{self!r} {' '.join(self.static_sha256)}"

    def prepare(self, context: DefenseContext) -> None:
        """Open every static model the way ``robust audit`` would and freeze it."""
        # imported here: the API module imports the plugin host, which imports this module
        from robustbench_lite.api import open_model

        if not self.models:
            raise DefenseError(f"`defense` {self.name} needs the static models to craft "
                               f"examples on: `defense` {self.name}:models=a.pt"
                               f"{MODEL_SEPARATOR}b.pt")
        self.static, self.static_sha256 = [], []
        for entry in self.models:
            try:
                model = open_model(entry, context.data, context.catalogue,
                                   device=context.device)
            except RobustbenchError as exc:
                raise DefenseError(f"`defense` {self.name}: cannot use the static model "
                                   f"{entry!r}: {exc}") from None
            self.static_sha256.append(model.sha256)
            module = model.module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)
            self.static.append(module)
        logger.info("ensemble adversarial training with %d static model(s)", len(self.static))

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        if not self.static:
            raise DefenseError(f"`defense` {self.name} was not prepared; call "
                               "Recipe.prepare() before training")
        sources = [step.model, *self.static]
        choice = int(torch.randint(len(sources), (1,), generator=step.generator,
                                   device=step.generator.device))
        threat = self.threat(step.progress)
        if self.steps == 1:
            start, step_size = step.x, threat.eps
        else:
            start = uniform_start(step.x, threat, step.generator)
            step_size = 2.5 * threat.eps / self.steps
        return ascend(_objective(sources[choice], step.y), step.x, start, threat,
                      step_size=step_size, steps=self.steps)

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        return mixed_loss(self.name, self.alpha, step, logits, adversarial_logits)
