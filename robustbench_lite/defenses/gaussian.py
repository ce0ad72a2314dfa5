"""Gaussian data augmentation: training on inputs with isotropic Gaussian noise, the base
classifier of randomized smoothing (`robustbench_lite.defenses.randomized_smoothing`)."""

from __future__ import annotations

import torch

from robustbench_lite.defenses.base import Defense, TrainingStep
from robustbench_lite.defenses.checking import check_number
from robustbench_lite.defenses.inner import noise


class GaussianAugmentation(Defense):
    """Gaussian data augmentation (``gaussian-augmentation``).

    Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
    ICML 2019. The base classifier f of randomized smoothing is trained on inputs with
    Gaussian noise of the same standard deviation sigma that the smoothed classifier
    ``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)`` adds, so that f classifies noisy
    inputs well and g's certified L2 radius ``sigma * Phi^-1(p_A)`` is large::

        x_noisy = clip(x + sigma * N(0, I), 0, 1)     (for a share ``ratio`` of the batch)
        loss    = CE(f(x_noisy), y)

    The noise is clipped to the pixel box (the training loop's contract), and a random share
    ``1 - ratio`` of each batch stays clean (ratio 1: every sample is noisy, as in the
    paper). Another defense may own the loss (``label-smoothing``); it then applies to the
    noisy batch. ``robust harden`` with this defense adds the randomized-smoothing
    certificate at the same sigma to both audits. On its own it gives little robustness to
    the base model f: what it buys is the certificate of g.

    Args:
        sigma: standard deviation of the noise, > 0 (default 0.25, one of the paper's three
            levels 0.25, 0.5, 1.0, on inputs in [0, 1]).
        ratio: share of each batch that is noised, 0 < ratio <= 1 (default 1.0).

    Cost per step: one Gaussian draw per input, then plain training (1 forward and 1
    backward pass).
    """

    name = "gaussian-augmentation"

    def __init__(self, *, sigma: float = 0.25, ratio: float = 1.0) -> None:
        self.sigma = check_number(self.name, "sigma", sigma, lambda v: v > 0,
                                  "a number > 0")
        self.ratio = check_number(self.name, "ratio", ratio, lambda v: 0 < v <= 1,
                                  "a number with 0 < ratio <= 1")
        self._set_params(sigma=self.sigma, ratio=self.ratio)

    @property
    def smoothing_sigma(self) -> float:
        """The smoothed classifier this defense trains for adds noise of ``sigma``."""
        return self.sigma

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        noisy = (step.x + self.sigma * noise("normal", step.x, step.generator)).clamp(0, 1)
        if self.ratio == 1:
            return noisy
        chosen = noise("uniform", step.x.new_empty(len(step.x)), step.generator) < self.ratio
        keep = chosen.view(-1, *([1] * (step.x.dim() - 1)))
        return torch.where(keep, noisy, step.x)
