"""Defenses: the `Defense` plugin class and how defenses compose into a `Recipe`.

A defense acts through up to three seams of the training loop:

* ``transform_model(module)``: change the network once, before training (spectral
  normalisation);
* ``perturb(step)``: replace or accompany the training batch by perturbed inputs
  (adversarial training, AdvMix);
* ``loss(step, logits, adversarial_logits)``: the training objective (label smoothing,
  FGSM's mixed objective, TRADES).

A defense that needs more than its parameters (other models, a generator) loads it in
``prepare(context)``, called once before training (and before the first audit of
``robust harden``, so a bad file fails at once).

A recipe holds any number of model transforms, at most one perturbing defense and at most one
defense that owns the objective; any other combination is refused with a message naming
both defenses. Without an objective the loss is the cross-entropy of the inputs trained on:
the perturbed batch when a defense perturbs (Madry et al.), else the clean one. An objective
of another defense than the perturbing one (label smoothing with PGD training) is applied to
the perturbed batch.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from torch.nn import functional

from robustbench_lite.errors import DefenseError
from robustbench_lite.params import Parametrised

if TYPE_CHECKING:
    from robustbench_lite.catalogue import Catalogue
    from robustbench_lite.data.eval_data import EvalData

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DefenseContext:
    """What `Defense.prepare` may use: the plugin ``catalogue`` (to open models or
    generators), the ``data`` trained on and the ``device`` training runs on."""

    catalogue: Catalogue
    data: EvalData
    device: torch.device


@dataclass(frozen=True)
class TrainingStep:
    """One optimisation step as a defense sees it: ``model`` is the network being trained
    (in training mode, inputs in [0, 1]); ``progress`` runs from 0 (first step) to 1 (last
    step of the last epoch), for curricula; ``generator`` is the run's seeded generator."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    progress: float
    generator: torch.Generator


class Defense(Parametrised, ABC):
    """Base class of every defense (registered with ``register_defenses``).

    Subclasses set ``name`` (what users pass to ``--defense``), take their parameters as
    keyword-only ``__init__`` arguments stored with `_set_params`, document their paper and
    parameters in the class docstring, and override the seams they use.
    """

    name: ClassVar[str]

    def prepare(self, context: DefenseContext) -> None:
        """Load what the defense needs beyond its parameters (called once, before training);
        raise `DefenseError` for anything missing or unusable."""

    def fingerprint(self) -> str:
        """What decides this defense's effect on training, for the checkpoint fingerprint
        (`--resume` refuses a checkpoint of another run): its parameters; a defense that
        loads files in `prepare` adds their contents' hashes."""
        return repr(self)

    @property
    def smoothing_sigma(self) -> float | None:
        """The noise level of the randomized-smoothing certificate that the audits before
        and after this defense should add (None: none; a noise-training defense sets it)."""
        return None

    @property
    def transforms_model(self) -> bool:
        return type(self).transform_model is not Defense.transform_model

    @property
    def perturbs(self) -> bool:
        return type(self).perturb is not Defense.perturb

    @property
    def owns_loss(self) -> bool:
        return type(self).loss is not Defense.loss

    def transform_model(self, module: nn.Module) -> nn.Module:
        """The network to train instead of ``module`` (called once, before training)."""
        return module

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        """The perturbed training inputs for ``step`` (same shape as ``step.x``, in [0, 1]).
        Called with the model in evaluation mode and gradients of the parameters off."""
        raise NotImplementedError

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        """The training loss. For a defense that also perturbs: ``logits`` of the clean batch
        and ``adversarial_logits`` of its perturbed one. Otherwise ``logits`` are those of
        the inputs trained on (perturbed, if another defense perturbs) and
        ``adversarial_logits`` is None."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class Recipe:
    """Defenses composed: `compose` checks the combination."""

    defenses: tuple[Defense, ...]

    @property
    def perturber(self) -> Defense | None:
        return next((d for d in self.defenses if d.perturbs), None)

    @property
    def objective(self) -> Defense | None:
        return next((d for d in self.defenses if d.owns_loss), None)

    @property
    def smoothing_sigma(self) -> float | None:
        """The first defense's `Defense.smoothing_sigma` that is set, else None."""
        return next((d.smoothing_sigma for d in self.defenses
                     if d.smoothing_sigma is not None), None)

    def prepare(self, context: DefenseContext) -> None:
        for defense in self.defenses:
            defense.prepare(context)

    def transform(self, module: nn.Module) -> nn.Module:
        for defense in self.defenses:
            module = defense.transform_model(module)
        return module

    def step_loss(self, step: TrainingStep) -> torch.Tensor:
        """Perturb (with the model in evaluation mode), then the loss in training mode."""
        adversarial = None
        if self.perturber is not None:
            step.model.eval()
            parameters = [p for p in step.model.parameters() if p.requires_grad]
            for parameter in parameters:
                parameter.requires_grad_(False)
            try:
                adversarial = self.perturber.perturb(step).detach()
            finally:
                for parameter in parameters:
                    parameter.requires_grad_(True)
            step.model.train()
        objective = self.objective
        if adversarial is not None and objective is self.perturber:
            assert objective is not None
            return objective.loss(step, step.model(step.x), step.model(adversarial))
        logits = step.model(step.x if adversarial is None else adversarial)
        if objective is not None:
            return objective.loss(step, logits, None)
        return functional.cross_entropy(logits, step.y)


def compose(defenses: Sequence[Defense]) -> Recipe:
    """A recipe of ``defenses`` in order; `DefenseError` for a combination that does not
    make sense (two perturbing defenses, two objectives, a repeated defense)."""
    seen: dict[str, Defense] = {}
    for defense in defenses:
        if defense.name in seen:
            raise DefenseError(f"`defense` {defense.name} is given twice; give it once with "
                               "all its parameters")
        seen[defense.name] = defense
    for seam, label in (("perturbs", "perturbs the training batch"),
                        ("owns_loss", "defines the training loss")):
        owners = [d.name for d in defenses if getattr(d, seam)]
        if len(owners) > 1:
            raise DefenseError(f"`defense` {owners[0]} and `defense` {owners[1]} both "
                               f"{label}; choose one of them")
    return Recipe(tuple(defenses))
