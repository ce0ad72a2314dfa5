"""The ``denoiser`` defense: a U-Net trained to undo adversarial perturbations, in front of
the classifier."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from robustbench_lite.defenses.adversarial import PGDAT
from robustbench_lite.defenses.base import Defense, DefenseContext, TrainingStep
from robustbench_lite.defenses.checking import check_bool, check_steps
from robustbench_lite.defenses.unet import Denoised, UNet
from robustbench_lite.errors import DefenseError

LOSSES = ("hgd", "pixel")


def _denoised(model: nn.Module) -> Denoised:
    found = next((m for m in model.modules() if isinstance(m, Denoised)), None)
    if found is None:
        raise DefenseError("`defense` denoiser trains a model without its denoiser; apply the "
                           "recipe's transform to the model before training")
    return found


class Denoiser(Defense):
    """A learned denoiser in front of the classifier (``denoiser``).

    Liao, Liang, Dong, Pang, Hu & Zhu, "Defense against Adversarial Attacks Using High-Level
    Representation Guided Denoiser", CVPR 2018, with a U-Net (Ronneberger et al., 2015; see
    `robustbench_lite.defenses.unet.UNet`) sized to the input's channels. The model becomes
    ``classifier(D(x))`` (one module: it trains, saves and audits end to end). Each batch is
    attacked with PGD (Linf, ``steps`` steps from a random start, as ``pgd-at`` does) through
    the whole denoised model as it trains, and D learns to undo the perturbation::

        hgd:   loss = | f(D(x_adv)) - f(x) |_1       (f: the classifier's logits, the
                                                     paper's LGD variant)
        pixel: loss = | D(x_adv) - x |_1

    Liao et al. attack the bare classifier once, offline; attacking the denoised model
    during training hardens the denoiser against an attacker who sees it. With
    ``freeze_classifier`` (the paper's setting) only D trains; without it the classifier
    trains jointly and the loss adds ``CE(f(D(x_adv)), y)`` so that it keeps classifying.
    D is differentiable: the audit's gradient attacks see through it, so what the audit
    measures is what the denoiser buys. The saved model is the wrapper: harden writes
    ``model.pt`` only, no bare-architecture ``model.safetensors``.

    Args:
        loss: ``hgd`` (default) or ``pixel``.
        freeze_classifier: train only the denoiser (default true).
        eps: the Linf radius of the training attack, > 0 and <= 1 (default 0.1, the digits
            standard).
        steps: PGD steps of the training attack, an integer >= 1 (default 7).
        width: channels of the U-Net's first level (doubled per level), an integer >= 1
            (default 16).

    Cost per step: ``steps`` forward and backward passes for the attack, then 2 forward
    passes and 1 backward pass of the denoised model (and 1 forward pass of the bare
    classifier for ``hgd``).
    """

    name = "denoiser"

    def __init__(self, *, loss: str = "hgd", freeze_classifier: bool = True,
                 eps: float = 0.1, steps: int = 7, width: int = 16) -> None:
        if loss not in LOSSES:
            raise DefenseError(f"`defense` {self.name}: loss must be one of "
                               f"{', '.join(LOSSES)}, got {loss!r}")
        self.objective = loss
        self.freeze_classifier = check_bool(self.name, "freeze_classifier", freeze_classifier)
        self.steps = check_steps(self.name, steps)
        self.width = check_steps(self.name, width, "width")
        self.attack = PGDAT(norm="linf", eps=eps, steps=self.steps)
        self.eps = self.attack.eps
        self._set_params(loss=loss, freeze_classifier=self.freeze_classifier, eps=self.eps,
                         steps=self.steps, width=self.width)
        self.channels: int | None = None
        self._adversarial: torch.Tensor | None = None

    def prepare(self, context: DefenseContext) -> None:
        self.channels = int(context.data.x.shape[1])

    def _input_channels(self, module: nn.Module) -> int:
        if self.channels is not None:
            return self.channels
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is None:
            raise DefenseError(f"`defense` {self.name} cannot tell the input's channels of "
                               f"{type(module).__name__}; call prepare() with the data first")
        return int(conv.in_channels)

    def transform_model(self, module: nn.Module) -> nn.Module:
        """``Denoised(UNet, module)`` on ``module``'s device; with ``freeze_classifier``
        the classifier's parameters never receive gradients."""
        unet = UNet(self._input_channels(module), self.width)
        parameter = next(module.parameters(), None)
        if parameter is not None:
            unet = unet.to(parameter.device)
        return Denoised(unet, module, self.freeze_classifier)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        self._adversarial = self.attack.perturb(step)
        return self._adversarial

    def loss(self, step: TrainingStep, logits: torch.Tensor,
             adversarial_logits: torch.Tensor | None) -> torch.Tensor:
        adversarial = self._adversarial
        if adversarial_logits is None or adversarial is None \
                or adversarial.shape != step.x.shape:
            raise DefenseError(f"`defense` {self.name} defines its loss on the batch it "
                               "perturbs itself; use it through compose()")
        model = _denoised(step.model)
        if self.objective == "pixel":
            loss = functional.l1_loss(model.denoiser(adversarial), step.x)
        else:
            with torch.no_grad():
                target = model.classifier(step.x)
            loss = functional.l1_loss(adversarial_logits, target)
        if not self.freeze_classifier:
            loss = loss + functional.cross_entropy(adversarial_logits, step.y)
        return loss
