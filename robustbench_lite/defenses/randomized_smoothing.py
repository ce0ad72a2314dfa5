"""Randomized smoothing's certificate: Cohen, Rosenfeld & Kolter, "Certified Adversarial
Robustness via Randomized Smoothing", ICML 2019 (their CERTIFY procedure).

The smoothed classifier of a base classifier f at noise level sigma is
``g(x) = argmax_c P(f(x + eps) = c)``, ``eps ~ N(0, sigma^2 I)``. If the top class's
probability is at least p_A > 1/2, g is constant on the L2 ball of radius
``sigma * Phi^-1(p_A)`` around x (Theorem 1, in the form of their binary bound). CERTIFY
estimates it by Monte Carlo:

1. selection: n0 noisy copies of x through f; the most frequent class is the guess c_A;
2. estimation: n fresh noisy copies; k of them are classified c_A;
3. p_A_lower: the one-sided (1 - alpha) Clopper-Pearson lower bound on P(f(x + eps) = c_A)
   from k of n, i.e. the alpha quantile of Beta(k, n - k + 1);
4. abstain when p_A_lower < 1/2, else predict c_A with radius ``sigma * Phi^-1(p_A_lower)``.

With probability at least 1 - alpha (over the noise) a returned prediction is g's and g is
robust within the returned radius. The certificate is about g, never about f: the base
model itself may be broken by a much smaller perturbation. The noise is not clipped to the
pixel box (as in the paper); the model only has to accept inputs slightly outside [0, 1].

All noise comes from the caller's `torch.Generator`, drawn on its device; the forward
passes run on ``device`` in batches of ``batch_size`` noisy inputs, so the same generator
seed, batch size and device give the same certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, norm

from robustbench_lite.errors import DefenseError

#: The abstention prediction.
ABSTAIN = -1


@dataclass(frozen=True)
class SmoothingCertificate:
    """Per sample (CPU tensors): ``predictions`` of g (`ABSTAIN` = -1 when it abstained),
    ``radii`` (the certified L2 radius; 0 when it abstained) and the true ``labels``."""

    predictions: torch.Tensor
    radii: torch.Tensor
    labels: torch.Tensor

    @property
    def abstained(self) -> float:
        """The share of samples g abstained on."""
        return float((self.predictions == ABSTAIN).float().mean()) if len(self.labels) else 0.0

    @property
    def accuracy(self) -> float:
        """The share of samples g classifies correctly (without abstaining)."""
        return self.certified_accuracy(0.0)

    def certified_accuracy(self, radius: float) -> float:
        """The share of samples g classifies correctly with a certified radius of at least
        ``radius`` (abstentions are never certified)."""
        if not len(self.labels):
            return 0.0
        certified = (self.predictions == self.labels) & (self.radii >= radius)
        return float(certified.float().mean())

    def curve(self, radii: Sequence[float]) -> dict[float, float]:
        """`certified_accuracy` at each of ``radii``."""
        return {radius: self.certified_accuracy(radius) for radius in radii}


def lower_confidence_bound(successes: np.ndarray | int, trials: int,
                           alpha: float) -> np.ndarray:
    """The one-sided (1 - ``alpha``) Clopper-Pearson lower bound on a binomial proportion
    from ``successes`` of ``trials``: the ``alpha`` quantile of Beta(k, n - k + 1), 0 when
    k = 0 (the lower end of the two-sided exact interval at level 1 - 2 alpha)."""
    k = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, k, trials - k + 1)
    return np.where(k > 0, bound, 0.0)


def class_counts(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, draws: int,
                 sigma: float, batch_size: int, generator: torch.Generator,
                 device: torch.device, num_classes: int | None = None) -> torch.Tensor:
    """``(len(x), num_classes)`` counts of the classes ``model`` predicts on ``draws`` noisy
    copies of each sample (noise N(0, sigma^2 I) from ``generator``), on ``device``, in
    batches of ``batch_size`` noisy inputs that may span several samples."""
    total = len(x) * draws
    counts: torch.Tensor | None = None if num_classes is None else torch.zeros(
        len(x), num_classes, dtype=torch.long, device=device)
    for start in range(0, total, batch_size):
        owner = torch.arange(start, min(start + batch_size, total), device=device) // draws
        clean = x[owner.to(x.device)].to(device)
        noise = torch.randn(clean.shape, generator=generator, device=generator.device,
                            dtype=clean.dtype)
        with torch.no_grad():
            logits = model(clean + sigma * noise.to(device))
        labels = logits.argmax(dim=1)
        if counts is None:
            counts = torch.zeros(len(x), logits.shape[1], dtype=torch.long, device=device)
        counts.index_put_((owner, labels), torch.ones_like(labels), accumulate=True)
    if counts is None:
        return torch.zeros(len(x), num_classes or 0, dtype=torch.long)
    return counts.cpu()


def certify(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            *, sigma: float, n0: int = 100, n: int = 1000, alpha: float = 0.001,
            batch_size: int = 1000, generator: torch.Generator,
            device: torch.device | str | None = None) -> SmoothingCertificate:
    """CERTIFY (Cohen et al. 2019) for every sample of ``x`` (labels ``y``): g's prediction
    (`ABSTAIN` when ``p_A_lower < 1/2``) and certified L2 radius ``sigma *
    Phi^-1(p_A_lower)``, with ``n0`` selection draws, ``n`` estimation draws and failure
    probability ``alpha``. ``model`` maps a batch to logits (or scores) on ``device``
    (default: ``x``'s device); all noise comes from ``generator``."""
    _check(sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch_size)
    target = torch.device(device) if device is not None else x.device
    selection = class_counts(model, x, n0, sigma, batch_size, generator, target)
    guess = selection.argmax(dim=1)
    estimation = class_counts(model, x, n, sigma, batch_size, generator, target,
                              num_classes=selection.shape[1])
    hits = estimation.gather(1, guess.view(-1, 1)).squeeze(1).numpy()
    p_lower = lower_confidence_bound(hits, n, alpha)
    certified = p_lower >= 0.5
    radii = np.where(certified, sigma * norm.ppf(np.where(certified, p_lower, 0.5)), 0.0)
    predictions = torch.where(torch.from_numpy(certified), guess,
                              torch.full_like(guess, ABSTAIN))
    return SmoothingCertificate(predictions, torch.from_numpy(radii).float(), y.cpu())


def _check(*, sigma: float, n0: int, n: int, alpha: float, batch_size: int) -> None:
    if not (isinstance(sigma, int | float) and not isinstance(sigma, bool)
            and 0 < sigma < float("inf")):
        raise DefenseError(f"randomized smoothing: `sigma` must be a number > 0, got {sigma!r}")
    for name, value in (("n0", n0), ("n", n), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DefenseError(f"randomized smoothing: `{name}` must be an integer >= 1, got "
                               f"{value!r}")
    if not (isinstance(alpha, int | float) and not isinstance(alpha, bool) and 0 < alpha < 0.5):
        raise DefenseError(f"randomized smoothing: `alpha` must be a number with "
                           f"0 < alpha < 0.5, got {alpha!r}")
