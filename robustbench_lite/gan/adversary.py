"""PGD against a discriminator (Madry et al. 2018), as discriminator adversarial training
uses it: in latent space, move ``z`` (or ``w``) within a ball so that G's sample looks real
to D; in pixel space, move an image within an Lp ball in [0, 1] to raise or lower D's
realness.

Both return the iterate with the best objective seen per sample (PGD's last iterate may be
worse). Gradients are taken with respect to the inputs only (no parameter ``.grad`` is
touched); the modules run in evaluation mode and get their training flags back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

from robustbench_lite.errors import GanError
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.threat import Norm, ThreatModel

#: Default PGD step: ``STEP_FACTOR * eps / steps`` (Madry et al.'s 2.5).
STEP_FACTOR = 2.5


@contextmanager
def evaluating(*modules: object) -> Iterator[None]:
    """Put the `nn.Module` among ``modules`` in evaluation mode; restore their flags after."""
    chosen = [module for module in modules if isinstance(module, nn.Module)]
    flags = [[sub.training for sub in module.modules()] for module in chosen]
    for module in chosen:
        module.eval()
    try:
        yield
    finally:
        for module, saved in zip(chosen, flags, strict=True):
            for sub, flag in zip(module.modules(), saved, strict=True):
                sub.training = flag


def _direction(gradient: Tensor, norm: Norm) -> Tensor:
    """The steepest-ascent step of unit size in ``norm`` (L1: the L1-normalised gradient)."""
    if norm is Norm.LINF:
        return gradient.sign()
    order = 2 if norm is Norm.L2 else 1
    size = torch.linalg.vector_norm(gradient.flatten(1), ord=order, dim=1).clamp_min(1e-12)
    step: Tensor = gradient / size.view(-1, *([1] * (gradient.dim() - 1)))
    return step


def call_method(module: nn.Module, method: str, x: Tensor) -> Tensor:
    """``module.<method>(x)`` (a generator's ``mapping`` or ``synthesis``) as a tensor."""
    out: Tensor = getattr(module, method)(x)
    return out


def _threat(norm: Norm | str, eps: float, lower: float, upper: float) -> ThreatModel:
    threat = ThreatModel(Norm.parse(norm) if isinstance(norm, str) else norm, eps,
                         lower=lower, upper=upper)
    if not threat.norm.is_lp:
        raise GanError(f"PGD needs an Lp norm, got {threat.norm.value!r}; use linf, l2 or l1")
    return threat


def _pgd(objective: Callable[[Tensor], Tensor], start: Tensor, threat: ThreatModel,
         steps: int, step_size: float | None, random_start: bool,
         generator: torch.Generator | None) -> Tensor:
    """Maximise ``objective`` (one value per sample) over the ball around ``start``."""
    if steps < 0:
        raise GanError(f"PGD steps must be >= 0, got {steps}")
    if threat.eps == 0 or steps == 0:
        return start.detach().clone()
    step = STEP_FACTOR * threat.eps / steps if step_size is None else step_size
    origin = start.detach()
    point = origin.clone()
    if random_start:
        noise = torch.rand(origin.shape, generator=generator, device=origin.device,
                           dtype=origin.dtype)
        point = threat.project(origin + (2.0 * noise - 1.0) * threat.eps, origin)
    best, best_value = point.clone(), torch.full((len(point),), -math.inf,
                                                 device=point.device)
    for index in range(steps + 1):
        point.requires_grad_(True)
        value = objective(point)
        improved = value.detach() > best_value
        best_value = torch.where(improved, value.detach(), best_value)
        best[improved] = point.detach()[improved]
        if index == steps:
            break
        (gradient,) = torch.autograd.grad(value.sum(), point)
        point = threat.project(point.detach() + step * _direction(gradient, threat.norm),
                               origin)
    return best


def latent_pgd(pair: GanPair, z: Tensor, *, space: Literal["z", "w"], norm: Norm | str,
               eps: float, steps: int, step_size: float | None = None,
               spread: tuple[Tensor, Tensor] | None = None, random_start: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
    """Latents near ``z`` whose samples D finds most real: maximise ``D(G(.))`` in a ball of
    radius ``eps`` in prior standard deviations.

    ``space="z"``: returns ``z'`` with ``||z' - z|| <= eps`` (z's prior is N(0, I)).
    ``space="w"``: returns ``w'`` with ``||(w' - mapping(z)) / std|| <= eps``, where
    ``spread = (mean, std)`` of w (`GanPair.latent_spread`; measured with seed 0 when None).
    ``step_size`` defaults to ``2.5 * eps / steps``; ``random_start`` draws a uniform start
    in the Linf box of radius eps (projected) from ``generator``.
    """
    if space not in ("z", "w"):
        raise GanError(f"unknown latent space {space!r}; choose 'z' or 'w'")
    threat = _threat(norm, eps, -math.inf, math.inf)
    z = z.detach().to(pair.device)
    with evaluating(pair.generator, pair.discriminator):
        if space == "z":
            return _pgd(lambda point: pair.realness(pair.generate(point)), z, threat, steps,
                        step_size, random_start, generator)
        if not pair.has_mapping:
            raise GanError("the generator has no mapping network: w-space PGD needs "
                           "`mapping(z)` and `synthesis(w)`; use space='z'")
        std = (spread if spread is not None else pair.latent_spread(0))[1].to(pair.device)
        with torch.no_grad():
            w = call_method(pair.generator, "mapping", z)

        def realness(delta: Tensor) -> Tensor:
            return pair.realness(call_method(pair.generator, "synthesis", w + delta * std))

        delta = _pgd(realness, torch.zeros_like(w), threat, steps, step_size, random_start,
                     generator)
        return w + delta * std


def pixel_pgd(discriminator_fn: Callable[[Tensor], Tensor], x: Tensor, *,
              raise_realness: bool, norm: Norm | str, eps: float, steps: int,
              step_size: float | None = None, random_start: bool = False,
              generator: torch.Generator | None = None) -> Tensor:
    """Images within ``eps`` of ``x`` (in ``norm``, inside [0, 1]) that raise
    (``raise_realness``) or lower D's logit as far as PGD finds. ``discriminator_fn`` maps
    images to logits ``(N,)`` or ``(N, 1)``; an `nn.Module` runs in evaluation mode."""
    threat = _threat(norm, eps, 0.0, 1.0)
    sign = 1.0 if raise_realness else -1.0

    def objective(images: Tensor) -> Tensor:
        logits = discriminator_fn(images)
        return sign * logits.reshape(len(images))

    with evaluating(discriminator_fn):
        return _pgd(objective, x.detach(), threat, steps, step_size, random_start, generator)
