"""``enc(x)`` by latent optimisation, for generators that come without an encoder (the
AdvMix paper's Algorithm 1, as this project reads it).

For a batch ``x`` the per-layer styles ``s`` start at the mean style (``map`` of many prior
draws, as StyleGAN projection starts) and are optimised with Adam on::

    L(s) = mean (G(s) - x)^2                                   pixel reconstruction
         + feature_weight * d(F(G(s)), F(x))                   feature reconstruction
         + mixing_weight  * mean_k d(F(G(mix(s, w_k))), F(x))  mixing

    d(a, b) = mean (a - b)^2 / mean b^2       (scale-free: features may be logits)

``G`` is ``synthesise``; ``w_k = map(z_k)`` are random fine styles drawn afresh at every
step; ``F`` is a feature network given by the caller. The paper uses VGG features for the
reconstruction; no pretrained VGG can be fetched here, so ``F`` is a small network trained
on the task (for colour-digits, the bundled ``digits-cnn`` on the colour-free image). The
mixing term asks the coarse styles alone to carry what ``F`` sees whatever the fine styles
are, which is what lets the attack replace the fine styles without changing the label.
Without ``F`` only the pixel term is used.

Measured with the bundled colour-digits generator wrapped without its encoder (128 test
images, defaults, one CPU thread, about 0.06 s per image): reconstruction error 0.0015 per
pixel (its learned encoder: 0.0075), the digit kept in 96.1% of fine-style mixes (89.1%
without the mixing term), the mix's colour 0.08 from the partner's (learned encoder: 0.12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from robustbench_lite.errors import GeneratorError
from robustbench_lite.semantic.generator import StyleGenerator

Features = Callable[[Tensor], Tensor]

#: Prior draws averaged for the starting (mean) style.
MEAN_STYLE_DRAWS = 1024


@dataclass(frozen=True)
class InversionSettings:
    """Adam ``steps`` at ``learning_rate``; the weights of the feature and mixing terms; the
    random fine styles per step of the mixing term; the ``seed`` of their draws."""

    steps: int = 150
    learning_rate: float = 0.1
    feature_weight: float = 0.01
    mixing_weight: float = 0.05
    mixing_draws: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.mixing_draws < 1 or self.learning_rate <= 0:
            raise GeneratorError(f"inversion needs steps >= 1, mixing_draws >= 1 and a "
                                 f"learning rate > 0, got {self}")


def mean_style(generator: StyleGenerator, seed: int = 0) -> Tensor:
    """``map`` averaged over `MEAN_STYLE_DRAWS` prior draws: ``(style_dim,)``."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn((MEAN_STYLE_DRAWS, generator.z_dim), generator=rng)
    with torch.no_grad():
        return generator.map(z.to(generator.device)).mean(dim=0)


def invert(generator: StyleGenerator, x: Tensor, features: Features | None = None,
           settings: InversionSettings | None = None) -> Tensor:
    """Styles ``(N, num_layers, style_dim)`` whose synthesis reconstructs ``x`` and whose
    coarse layers alone keep ``features`` of ``x`` (see the module docstring). The
    generator's parameters are not touched; deterministic under ``settings.seed``."""
    settings = settings or InversionSettings()
    x = x.to(generator.device)
    start = mean_style(generator, settings.seed)
    styles = start.expand(len(x), generator.num_layers, -1).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([styles], lr=settings.learning_rate)
    rng = torch.Generator().manual_seed(settings.seed + 1)
    with torch.no_grad():
        target = features(x) if features is not None else None
    for _ in range(settings.steps):
        with torch.enable_grad():
            image = generator.synthesise(styles)
            loss = (image - x).square().mean()
            if features is not None and target is not None:
                scale = target.square().mean().clamp_min(1e-12)
                loss = loss + settings.feature_weight * (
                    features(image) - target).square().mean() / scale
                if settings.mixing_weight > 0:
                    mixing = image.new_zeros(())
                    for _ in range(settings.mixing_draws):
                        fine = generator.sample_styles(len(x), rng)
                        mixed = generator.synthesise(generator.mix(styles, fine))
                        mixing = mixing + (features(mixed) - target).square().mean() / scale
                    loss = loss + settings.mixing_weight * mixing / settings.mixing_draws
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    return styles.detach()
