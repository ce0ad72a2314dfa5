"""Style mixing as the paper defines it: keep an image's coarse (label-relevant) styles from
the encoder and replace its fine (label-irrelevant) ones, at random (RandMix) or to the
classifier's worst case (AdvMix, the paper's Algorithm 2).

Gowal, Qin, Huang, Cemgil, Dvijotham, Mann & Kohli, "Achieving Robustness in the Wild via
Adversarial Mixing with Disentangled Representations", CVPR 2020. The fine styles are
``map(z)`` for one latent ``z`` shared by every fine layer; the worst case is searched over
``z`` in the box ``[-radius, radius]^z_dim`` (the semantic threat model's eps, in units of
the prior's standard deviation) by signed gradient ascent with random restarts.
"""

from __future__ import annotations

import torch

from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.tasks.objective import ModelFn, Objective


def synthesise_mix(generator: StyleGenerator, coarse: torch.Tensor,
                   z: torch.Tensor) -> torch.Tensor:
    """Images with the coarse styles ``coarse`` (``(N, num_layers, style_dim)``, e.g. from
    `StyleGenerator.encode`) and the fine styles ``map(z)``; differentiable in ``z``."""
    fine = generator.broadcast(generator.map(z))
    return generator.synthesise(generator.mix(coarse, fine)).clamp(0, 1)


def latent_draw(generator: StyleGenerator, n: int, radius: float,
                rng: torch.Generator) -> torch.Tensor:
    """``n`` latents ``z ~ N(0, I)`` clipped to the box of ``radius``, on the generator's
    device, drawn with ``rng`` (on its own device)."""
    z = torch.randn((n, generator.z_dim), generator=rng, device=rng.device)
    return z.to(generator.device).clamp(-radius, radius)


def random_mix(generator: StyleGenerator, x: torch.Tensor, rng: torch.Generator,
               radius: float = float("inf")) -> torch.Tensor:
    """RandMix: ``x`` re-synthesised with its own coarse styles and random fine ones."""
    with torch.no_grad():
        coarse = generator.encode(x.to(generator.device))
        z = latent_draw(generator, len(x), radius, rng)
        return synthesise_mix(generator, coarse, z).to(x.device, x.dtype)


def worst_mix(generator: StyleGenerator, model: ModelFn, x: torch.Tensor,
              objective: Objective, radius: float, steps: int, restarts: int,
              step_size: float, rng: torch.Generator) -> torch.Tensor:
    """AdvMix's inner maximisation: per sample, the mix of ``x``'s coarse styles with fine
    styles ``map(z)``, ``z`` in the box of ``radius``, that maximises ``objective``'s loss on
    ``model``'s outputs (for classification: the cross-entropy of the true class). Each
    restart draws ``z`` from the clipped prior and takes ``steps`` signed gradient steps of
    ``step_size``, clipping to the box. A sample keeps the first mix that reaches the
    objective (`Objective.success`: misclassified), else the one with the highest loss
    seen.

    Cost: ``restarts * (steps + 1)`` forward passes of ``model`` and ``restarts * steps``
    backward passes, plus the generator's."""
    with torch.no_grad():
        coarse = generator.encode(x.to(generator.device))
    best = torch.empty_like(x)
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def consider(images: torch.Tensor, outputs: torch.Tensor) -> None:
        """Keep, per sample, the first mix that reaches the objective or the highest-loss
        one."""
        loss = objective.loss(outputs)
        reached = objective.success(outputs)
        better = ~fooled & (reached | (loss > best_loss))
        best[better] = images[better]
        best_loss[better] = loss[better]
        fooled.logical_or_(reached)

    for _ in range(restarts):
        z = latent_draw(generator, len(x), radius, rng)
        for _ in range(steps):
            with torch.enable_grad():
                z.requires_grad_(True)
                images = synthesise_mix(generator, coarse, z).to(x.device, x.dtype)
                outputs = model(images)
                loss = objective.loss(outputs).sum()
                (grad,) = torch.autograd.grad(loss, z)
            consider(images.detach(), outputs.detach())
            z = (z.detach() + step_size * grad.sign()).clamp(-radius, radius)
        with torch.no_grad():
            images = synthesise_mix(generator, coarse, z).to(x.device, x.dtype)
            consider(images, model(images))
        if bool(fooled.all()):
            break
    return best
