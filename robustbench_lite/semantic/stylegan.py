"""A StyleGAN in miniature for 8x8 colour digits, and the `colour-digits` `StyleGenerator`.

Structure (StyleGAN2's, scaled down; Karras et al. 2020):

- mapping network: an MLP ``z (z_dim) -> w (style_dim)``;
- synthesis network: a learned constant 4x4 input, then four layers, each with its own
  style (its own affine map of ``w`` to per-channel scales):

  ====  ==========================================  =======
  layer  operation                                    split
  ====  ==========================================  =======
  0      modulated/demodulated 3x3 conv at 4x4        coarse
  1      2x upsample, modulated/demodulated 3x3 conv  coarse
  2      modulated/demodulated 3x3 conv at 8x8        fine
  3      modulated 1x1 toRGB, sigmoid                 fine
  ====  ==========================================  =======

- encoder: a small CNN giving the mean and log-variance of ``z`` for an image (the mapping
  and synthesis networks act as its decoder); ``encode(x)`` is ``broadcast(map(mean))``.

No per-pixel noise inputs: the images have no stochastic detail for them to model. How the
networks are trained and why: `robustbench_lite.semantic.train_generator`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional

from robustbench_lite.atomic import atomic_path
from robustbench_lite.errors import GeneratorError
from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.sizes import NetworkSizes

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "colour_digits_generator.safetensors"
"""The bundled generator, made by ``robust train-generator`` with its defaults."""
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class MiniStyleGANConfig(NetworkSizes):
    """Sizes of the networks; stored in the file's metadata as JSON."""

    z_dim: int = 16
    style_dim: int = 32
    mapping_hidden: int = 64
    mapping_depth: int = 3
    channels_4x4: int = 64
    channels_8x8: int = 32
    encoder_channels: int = 32
    image_channels: int = 3


class ModulatedConv(nn.Module):
    """StyleGAN2's modulated convolution: input channels scaled by the style, weights
    demodulated per sample so outputs keep unit variance (StyleGAN2 eq. 1-3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 *, demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.affine = nn.Linear(style_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # a zero style means "no modulation"
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.upsample:
            x = functional.interpolate(x, scale_factor=2.0, mode="bilinear",
                                       align_corners=False)
        style = self.affine(w)
        weight = self.weight * self.scale
        out = functional.conv2d(x * style[:, :, None, None], weight,
                                padding=weight.shape[-1] // 2)
        if self.demodulate:
            energy = style.square() @ weight.square().sum(dim=(2, 3)).t()
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out + self.bias[None, :, None, None]


class Synthesis(nn.Module):
    """Learned constant 4x4 input, four styled layers (see the module docstring)."""

    num_layers = 4

    def __init__(self, config: MiniStyleGANConfig) -> None:
        super().__init__()
        wide, narrow = config.channels_4x4, config.channels_8x8
        self.constant = nn.Parameter(torch.randn(1, wide, 4, 4))
        self.layers = nn.ModuleList([
            ModulatedConv(wide, wide, 3, config.style_dim),
            ModulatedConv(wide, narrow, 3, config.style_dim, upsample=True),
            ModulatedConv(narrow, narrow, 3, config.style_dim),
        ])
        self.to_rgb = ModulatedConv(narrow, config.image_channels, 1, config.style_dim,
                                    demodulate=False)

    def forward(self, styles: Tensor) -> Tensor:
        x = self.constant.expand(len(styles), -1, -1, -1)
        for index, layer in enumerate(self.layers):
            x = functional.leaky_relu(layer(x, styles[:, index]), 0.2)
        return torch.sigmoid(self.to_rgb(x, styles[:, len(self.layers)]))


class Mapping(nn.Module):
    """The mapping MLP ``z -> w``."""

    def __init__(self, config: MiniStyleGANConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = config.z_dim
        for _ in range(config.mapping_depth - 1):
            layers += [nn.Linear(width, config.mapping_hidden), nn.LeakyReLU(0.2)]
            width = config.mapping_hidden
        layers.append(nn.Linear(width, config.style_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out


class Encoder(nn.Module):
    """8x8 image to the mean and log-variance of its latent ``z``."""

    def __init__(self, config: MiniStyleGANConfig) -> None:
        super().__init__()
        width = config.encoder_channels
        self.net = nn.Sequential(
            nn.Conv2d(config.image_channels, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * 2 * 2, 2 * config.z_dim),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_variance = self.net(x).chunk(2, dim=1)
        return mean, log_variance.clamp(-12.0, 6.0)


class MiniStyleGAN(nn.Module):
    """The three trainable networks together (one state_dict, one file)."""

    def __init__(self, config: MiniStyleGANConfig) -> None:
        super().__init__()
        self.config = config
        self.mapping = Mapping(config)
        self.synthesis = Synthesis(config)
        self.encoder = Encoder(config)

    def styles(self, z: Tensor) -> Tensor:
        """``broadcast(map(z))``: ``(N, num_layers, style_dim)``."""
        w: Tensor = self.mapping(z)
        return w[:, None, :].expand(-1, Synthesis.num_layers, -1)


class ColourDigitsGenerator(StyleGenerator):
    """The built-in generator for ``colour-digits`` (8x8 RGB): coarse layers carry the digit's
    shape, fine layers its colour. Parameters are frozen and in evaluation mode.
    ``metadata``: the file's metadata (architecture, training config, measured quality)."""

    name = "colour-digits"
    description = "a StyleGAN in miniature trained here on colour-digits (8x8 RGB)"
    coarse_layers: tuple[int, ...] = (0, 1)
    fine_layers: tuple[int, ...] = (2, 3)
    image_shape: tuple[int, int, int] = (3, 8, 8)

    def __init__(self, module: MiniStyleGAN, metadata: dict[str, str] | None = None) -> None:
        config = module.config
        self.module = module.eval().requires_grad_(False)
        self.z_dim = config.z_dim
        self.style_dim = config.style_dim
        self.num_layers = Synthesis.num_layers
        self.image_shape = (config.image_channels, 8, 8)
        self.metadata = dict(metadata or {})
        self.check_layers()

    @property
    def device(self) -> torch.device:
        return self.module.synthesis.constant.device

    def map(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise GeneratorError(f"z must be (N, {self.z_dim}), got {tuple(z.shape)}")
        out: Tensor = self.module.mapping(z)
        return out

    def synthesise(self, styles: Tensor) -> Tensor:
        if styles.dim() != 3 or tuple(styles.shape[1:]) != (self.num_layers, self.style_dim):
            raise GeneratorError(f"styles must be (N, {self.num_layers}, {self.style_dim}), "
                                 f"got {tuple(styles.shape)}")
        out: Tensor = self.module.synthesis(styles)
        return out

    def encode(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GeneratorError(f"images must be (N, {', '.join(map(str, self.image_shape))})"
                                 f", got {tuple(x.shape)}")
        mean, _ = self.module.encoder(x)
        return self.broadcast(self.map(mean))

    def to(self, device: torch.device | str) -> ColourDigitsGenerator:
        self.module.to(device)
        return self

    def save(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        """Write the weights and ``metadata`` (plus the config) to ``path`` atomically."""
        tensors = {key: value.detach().cpu().contiguous()
                   for key, value in self.module.state_dict().items()}
        header = {**self.metadata, **(metadata or {}), "generator": self.name,
                  "format_version": FORMAT_VERSION, "config": self.module.config.to_json()}
        with atomic_path(path) as temporary:
            save_file(tensors, str(temporary), metadata=header)

    @classmethod
    def load(cls, path: Path | None) -> ColourDigitsGenerator:
        """Open a file written by ``robust train-generator`` (``None``: the bundled one)."""
        path = DEFAULT_WEIGHTS if path is None else path
        metadata, tensors = read_generator_file(path)
        if metadata.get("generator") != cls.name:
            raise GeneratorError(f"{path} holds generator {metadata.get('generator')!r}, not "
                                 f"{cls.name!r}")
        try:
            config = MiniStyleGANConfig.from_json(metadata["config"])
        except (KeyError, ValueError, TypeError) as exc:
            raise GeneratorError(f"{path}: missing or malformed 'config' metadata ({exc}); "
                                 "retrain it with robust train-generator") from exc
        module = MiniStyleGAN(config)
        try:
            module.load_state_dict(tensors)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise GeneratorError(f"{path} does not match the {cls.name!r} generator's "
                                 f"architecture ({first}); retrain it with robust "
                                 "train-generator") from exc
        logger.debug("loaded generator %s from %s", cls.name, path)
        return cls(module, metadata)


def read_generator_metadata(path: Path) -> dict[str, str]:
    """The metadata of a generator safetensors file (its header only); `GeneratorError` when
    the file is missing, unreadable or not a generator file."""
    if not path.is_file():
        raise GeneratorError(f"generator file not found: {path}; pass a file written by "
                             "robust train-generator, or no file for the bundled default")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise GeneratorError(f"{path} is not a readable safetensors file ({exc}); pass a file "
                             "written by robust train-generator") from exc
    if "generator" not in metadata:
        raise GeneratorError(f"{path} has no 'generator' metadata, so it is not a generator "
                             "file; write one with robust train-generator")
    return metadata


def read_generator_file(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The metadata and tensors of a generator safetensors file (errors as
    `read_generator_metadata`)."""
    metadata = read_generator_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GeneratorError(f"{path} is not a readable safetensors file ({exc}); pass a file "
                             "written by robust train-generator") from exc
    return metadata, tensors
