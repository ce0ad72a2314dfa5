"""The digits GAN: a StyleGAN2-flavoured generator and a small CNN discriminator for 8x8
grey digits (the bundled pair, made by ``robust train-gan``).

Generator (Karras et al. 2020, scaled down), ``z (z_dim) -> w (w_dim) -> (N, 1, 8, 8)``:

- ``mapping(z)``: z normalised to unit mean square (StyleGAN's pixel norm), then an MLP;
- ``synthesis(w)``: a learned constant 4x4 input; a modulated/demodulated 3x3 conv at 4x4;
  2x upsampling and a modulated 3x3 conv to 8x8; another at 8x8; a modulated 1x1 conv to
  one channel and a sigmoid. One ``w`` styles every layer (no style mixing, no noise).

Discriminator: three 3x3 convs (8x8, 4x4, 2x2) with leaky ReLU and a linear layer to one
realness logit; no batch normalisation, so each image's logit depends on that image only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from robustbench_lite.semantic.stylegan import ModulatedConv
from robustbench_lite.sizes import NetworkSizes

GENERATOR_ARCHITECTURE = "digits-gan-generator"
DISCRIMINATOR_ARCHITECTURE = "digits-gan-discriminator"
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class DigitsGanConfig(NetworkSizes):
    """Sizes of both networks; stored in a GAN file's metadata as JSON."""

    z_dim: int = 16
    w_dim: int = 32
    mapping_hidden: int = 64
    mapping_depth: int = 3
    channels_4x4: int = 64
    channels_8x8: int = 32
    discriminator_channels: int = 32


class DigitsGenerator(nn.Module):
    """``forward(z) = synthesis(mapping(z))``: ``(N, z_dim)`` to images ``(N, 1, 8, 8)`` in
    [0, 1]. ``mapping`` and ``synthesis`` are exported for TorchScript."""

    def __init__(self, config: DigitsGanConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.w_dim = config.w_dim
        layers: list[nn.Module] = []
        width = config.z_dim
        for _ in range(config.mapping_depth - 1):
            layers += [nn.Linear(width, config.mapping_hidden), nn.LeakyReLU(0.2)]
            width = config.mapping_hidden
        layers.append(nn.Linear(width, config.w_dim))
        self.mapping_net = nn.Sequential(*layers)
        wide, narrow = config.channels_4x4, config.channels_8x8
        self.constant = nn.Parameter(torch.randn(1, wide, 4, 4))
        self.conv_4x4 = ModulatedConv(wide, wide, 3, config.w_dim)
        self.conv_up = ModulatedConv(wide, narrow, 3, config.w_dim, upsample=True)
        self.conv_8x8 = ModulatedConv(narrow, narrow, 3, config.w_dim)
        self.to_grey = ModulatedConv(narrow, 1, 1, config.w_dim, demodulate=False)

    @torch.jit.export
    def mapping(self, z: Tensor) -> Tensor:
        """``(N, z_dim)`` to ``(N, w_dim)``."""
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        w: Tensor = self.mapping_net(z)
        return w

    @torch.jit.export
    def synthesis(self, w: Tensor) -> Tensor:
        """``(N, w_dim)`` to images ``(N, 1, 8, 8)`` in [0, 1]."""
        x = self.constant.expand(w.shape[0], -1, -1, -1)
        x = functional.leaky_relu(self.conv_4x4(x, w), 0.2)
        x = functional.leaky_relu(self.conv_up(x, w), 0.2)
        x = functional.leaky_relu(self.conv_8x8(x, w), 0.2)
        return torch.sigmoid(self.to_grey(x, w))

    def forward(self, z: Tensor) -> Tensor:
        return self.synthesis(self.mapping(z))


class DigitsDiscriminator(nn.Module):
    """Images ``(N, 1, 8, 8)`` in [0, 1] to realness logits ``(N, 1)`` (positive: real)."""

    def __init__(self, config: DigitsGanConfig) -> None:
        super().__init__()
        self.config = config
        width = config.discriminator_channels
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * 2 * 2, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        # centred inputs train faster; the interface stays images in [0, 1]
        logits: Tensor = self.net(2.0 * x - 1.0)
        return logits


def make_digits_gan(config: DigitsGanConfig | None = None,
                    seed: int = 0) -> tuple[DigitsGenerator, DigitsDiscriminator]:
    """A freshly initialised (G, D), the same for the same ``config`` and ``seed`` (torch's
    global generator is left as it was)."""
    config = config or DigitsGanConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = DigitsGenerator(config)
        discriminator = DigitsDiscriminator(config)
    return generator, discriminator
