"""`GanPair`: a generator and a discriminator as the ``gan`` task, its audit and its
training see them.

The generator is an ``nn.Module`` with an int attribute ``z_dim`` and ``forward(z)``:
``(N, z_dim)`` to images ``(N, C, H, W)`` in [0, 1]. When it also has ``mapping(z)``
(``(N, z_dim)`` to ``(N, w_dim)``) and ``synthesis(w)`` (``(N, w_dim)`` to images, with
``synthesis(mapping(z)) == forward(z)``), w-space attacks apply. TorchScript generators
expose these as ``@torch.jit.export`` methods. A `StyleGenerator` (a user's StyleGAN2
through `WrappedStyleGenerator`) becomes such a module with `StyleGeneratorModule`.

The discriminator is an ``nn.Module``: images in [0, 1] to one realness logit per image,
``(N,)`` or ``(N, 1)``; a positive logit means "real".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from robustbench_lite.errors import GanError
from robustbench_lite.semantic.generator import StyleGenerator

#: Samples drawn to measure the spread of w (`latent_spread`).
SPREAD_SAMPLES = 4096

LatentFn = Callable[[Tensor], Tensor]


def mapping_of(generator: nn.Module) -> LatentFn:
    """The generator's ``mapping`` network (z to w); check `GanPair.has_mapping` first."""
    return cast(LatentFn, generator.mapping)


def synthesis_of(generator: nn.Module) -> LatentFn:
    """The generator's ``synthesis`` network (w to images)."""
    return cast(LatentFn, generator.synthesis)


class StyleGeneratorModule(nn.Module):
    """A `StyleGenerator` as a generator module: ``mapping = map``, ``synthesis(w) =
    synthesise(broadcast(w))``. Its parameters stay the wrapped generator's (frozen), so
    it is audited, not trained."""

    def __init__(self, generator: StyleGenerator) -> None:
        super().__init__()
        self.generator = generator
        self.z_dim = generator.z_dim

    def mapping(self, z: Tensor) -> Tensor:
        return self.generator.map(z)

    def synthesis(self, w: Tensor) -> Tensor:
        return self.generator.synthesise(self.generator.broadcast(w))

    def forward(self, z: Tensor) -> Tensor:
        return self.synthesis(self.mapping(z))


@dataclass
class GanPair:
    """A generator and a discriminator, with what the report names them by.

    ``sha256`` is the hash of the files they came from (or of their parameters);
    ``metadata`` holds what the files said (architectures, measured quality)."""

    generator: nn.Module
    discriminator: nn.Module
    name: str
    sha256: str
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def z_dim(self) -> int:
        z_dim = getattr(self.generator, "z_dim", None)
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
            raise GanError("the generator has no positive int attribute `z_dim`; set it on "
                           "the module (TorchScript: assign self.z_dim in __init__)")
        return z_dim

    @property
    def has_mapping(self) -> bool:
        """Whether w-space attacks apply (the generator has ``mapping`` and ``synthesis``)."""
        return callable(getattr(self.generator, "mapping", None)) and callable(
            getattr(self.generator, "synthesis", None))

    @property
    def device(self) -> torch.device:
        for parameter in self.discriminator.parameters():
            return parameter.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> GanPair:
        self.generator.to(device)
        self.discriminator.to(device)
        return self

    def generate(self, z: Tensor) -> Tensor:
        """G(z), checked: images in [0, 1] with no NaN."""
        images: Tensor = self.generator(z)
        if images.dim() != 4 or len(images) != len(z):
            raise GanError(f"the generator returned shape {tuple(images.shape)} for "
                           f"{len(z)} latents; it must return images (N, C, H, W)")
        return images

    def realness(self, images: Tensor) -> Tensor:
        """D's logit per image, ``(N,)``."""
        logits: Tensor = self.discriminator(images)
        if logits.dim() == 2 and logits.shape[1] == 1:
            logits = logits[:, 0]
        if logits.dim() != 1 or len(logits) != len(images):
            raise GanError(f"the discriminator returned shape {tuple(logits.shape)} for "
                           f"{len(images)} images; it must return one logit per image, "
                           "(N,) or (N, 1)")
        return logits

    @torch.no_grad()
    def sample(self, n: int, seed: int, batch_size: int = 512) -> tuple[Tensor, Tensor]:
        """``n`` latents ``z ~ N(0, I)`` drawn with ``seed`` (on the CPU) and G(z) (CPU)."""
        z = torch.randn((n, self.z_dim), generator=torch.Generator().manual_seed(seed))
        images = [self.generate(z[i:i + batch_size].to(self.device)).cpu()
                  for i in range(0, n, batch_size)]
        return z, torch.cat(images)

    @torch.no_grad()
    def latent_spread(self, seed: int, n: int = SPREAD_SAMPLES) -> tuple[Tensor, Tensor]:
        """The mean and standard deviation of w = mapping(z) per coordinate, measured on
        ``n`` latents drawn with ``seed`` (CPU tensors): w-space eps are in these units."""
        if not self.has_mapping:
            raise GanError("the generator has no mapping network: w-space attacks need "
                           "`mapping(z)` and `synthesis(w)`")
        z = torch.randn((n, self.z_dim), generator=torch.Generator().manual_seed(seed))
        mapping = mapping_of(self.generator)
        w = torch.cat([mapping(z[i:i + 512].to(self.device)).cpu() for i in range(0, n, 512)])
        return w.mean(dim=0), w.std(dim=0).clamp_min(1e-6)
