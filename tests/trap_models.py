"""Gradient-masking traps and honest models for testing false-robustness detection.

Each trap wraps an ordinary trained classifier (the bundled digits CNN) and hides its
gradients from a plain, non-adaptive gradient attack without making it any more robust:

- `QuantizedInput`: rounds pixels to a few grey levels (``torch.round``: zero gradient);
- `HugeTemperature`: multiplies the logits by a huge scale (softmax saturates, the gradient
  of the cross-entropy underflows to exactly 0);
- `RandomNoiseInput`: adds fresh Gaussian noise to the input on every forward (randomised);
- `JpegLike`: JPEG-style DCT quantisation of 8x8 blocks (``torch.round``: zero gradient);
- `ProbabilityOutput`: returns softmax probabilities instead of logits.

The adaptive fallbacks that break them are EOT (random noise), BPDA / straight-through
(``torch.round``), logit rescaling (huge temperature) and ``log`` (probabilities). Honest
models, which must raise no false alarm: the bundled default model and a PGD-adversarially
trained digits CNN (`train_pgd_model`, cached by `pgd_trained_model`).

Numbers measured with the bundled weights are in ``test_trap_models.py``.
"""

from __future__ import annotations

import hashlib
import math
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional

from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.defenses.adversarial import PGDAT
from robustbench_lite.defenses.base import compose
from robustbench_lite.models.robust_model import LoadInfo, RobustModel
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.training.harden import Hardener, HardenSettings
from robustbench_lite.training.loop import deterministic_torch

WEIGHTS = (Path(__file__).resolve().parent.parent / "robustbench_lite" / "weights"
           / "digits_cnn.safetensors")
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10

# ---------------------------------------------------------------- the traps


class QuantizedInput(nn.Module):
    """``inner(round(x * (levels - 1)) / (levels - 1))``: the input rounded to ``levels``
    evenly spaced grey levels. ``torch.round`` has a zero gradient, so the input gradient is
    exactly zero everywhere. The digits have 17 grey levels (``k / 16``); 16 levels move each
    pixel by at most 1/30 and keep the default model's clean accuracy (98.2%)."""

    def __init__(self, inner: nn.Module, levels: int = 16) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        self.inner = inner
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.levels - 1
        out: torch.Tensor = self.inner(torch.round(x * steps) / steps)
        return out


class HugeTemperature(nn.Module):
    """``inner(x) * scale``: the same predictions, but softmax saturates, so in float32 the
    cross-entropy gradient is exactly 0 for every sample whose logit margin exceeds about
    ``104 / scale``."""

    def __init__(self, inner: nn.Module, scale: float = 1e4) -> None:
        super().__init__()
        self.inner = inner
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x) * self.scale
        return out


class RandomNoiseInput(nn.Module):
    """``inner(x + sigma * noise)`` with fresh Gaussian noise on every forward pass.

    The noise comes from the module's own generator, seeded with ``seed``: the same sequence
    of calls gives the same outputs (`reseed` restarts the sequence). The noisy image is not
    clipped to [0, 1].
    """

    def __init__(self, inner: nn.Module, sigma: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.sigma = sigma
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int | None = None) -> None:
        """Restart the noise sequence (from ``seed``, else from the constructor's seed)."""
        self.generator.manual_seed(self.seed if seed is None else seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
        out: torch.Tensor = self.inner(x + self.sigma * noise.to(x.device))
        return out


def dct_matrix(size: int = 8, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ D.T == I``): ``D @ block @ D.T`` transforms a
    ``size x size`` block, ``D.T @ coefficients @ D`` inverts it."""
    k = torch.arange(size, dtype=torch.float64).unsqueeze(1)
    n = torch.arange(size, dtype=torch.float64).unsqueeze(0)
    matrix = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix.to(dtype)


#: The JPEG standard's luminance quantisation table (Annex K, quality 50), for pixels 0..255.
JPEG_LUMINANCE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)


def jpeg_table(quality: int) -> torch.Tensor:
    """The luminance table scaled to ``quality`` (1..100) as libjpeg does, for pixels in
    [0, 1] (divided by 255)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    factor = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = torch.floor((JPEG_LUMINANCE * factor + 50) / 100).clamp(min=1)
    return table / 255


class JpegLike(nn.Module):
    """JPEG-like compression of the input, then ``inner``: shift to [-0.5, 0.5], 2-D DCT of
    every 8x8 block (matrix products with `dct_matrix`), coefficients rounded to multiples of
    the `jpeg_table` for ``quality`` (``torch.round``: zero gradient), inverse DCT, shift
    back, clamp to [0, 1]. Height and width must be multiples of 8."""

    dct: torch.Tensor
    table: torch.Tensor

    def __init__(self, inner: nn.Module, quality: int = 50) -> None:
        super().__init__()
        self.inner = inner
        self.quality = quality
        self.register_buffer("dct", dct_matrix(8))
        self.register_buffer("table", jpeg_table(quality))

    def compress(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h % 8 or w % 8:
            raise ValueError(f"JpegLike needs height and width divisible by 8, got {h}x{w}")
        blocks = (x - 0.5).reshape(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)
        coefficients = self.dct @ blocks @ self.dct.T
        quantised = torch.round(coefficients / self.table) * self.table
        restored = (self.dct.T @ quantised @ self.dct).transpose(3, 4).reshape(n, c, h, w)
        return (restored + 0.5).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(self.compress(x))
        return out


class ProbabilityOutput(nn.Module):
    """``softmax(inner(x))``: probabilities where logits are expected. The cross-entropy an
    attack computes on them is nearly flat (its softmax sees values in [0, 1])."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.softmax(self.inner(x), dim=1)


# ---------------------------------------------------------------- RobustModel helpers


def robust_model(module: nn.Module, name: str) -> RobustModel:
    """``module`` (digits-shaped input, 10 classes) as a `RobustModel` named ``name``; its
    fake ``sha256`` is derived from the name so that each model keys its own results."""
    return RobustModel(module=module, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES,
                       name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                       load_info=LoadInfo(format="test"))


def default_digits_module() -> DigitsCNN:
    """A fresh `DigitsCNN` holding the bundled default weights, in evaluation mode."""
    module = DigitsCNN()
    module.load_state_dict(load_file(str(WEIGHTS)))
    return module.eval()


def trap_models(inner: nn.Module) -> dict[str, RobustModel]:
    """Every trap around ``inner``, with the parameters the tests measured, by name."""
    traps: dict[str, nn.Module] = {
        "quantized": QuantizedInput(inner),
        "huge-temperature": HugeTemperature(inner),
        "random-noise": RandomNoiseInput(inner),
        "jpeg": JpegLike(inner),
        "probabilities": ProbabilityOutput(inner),
    }
    return {name: robust_model(module, f"trap: {name}") for name, module in traps.items()}


# ---------------------------------------------------------------- a PGD-trained model


def digits_train() -> EvalData:
    """The digits TRAIN split (1347 images)."""
    return load_dataset("digits", catalogue_for(get_plugin_manager(load_entrypoints=False)),
                        "train")


def _pgd_linf(module: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
              generator: torch.Generator) -> torch.Tensor:
    """Linf PGD on the cross-entropy from a uniform random start, step ``2.5 * eps / steps``."""
    step = 2.5 * eps / steps
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    x_adv = (x + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = functional.cross_entropy(module(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def train_pgd_model(seed: int = 0, *, epochs: int = 15, eps: float = 0.1, steps: int = 5,
                    batch_size: int = 64, learning_rate: float = 3e-3) -> nn.Module:
    """A `DigitsCNN` adversarially trained from scratch (Madry et al.) on the whole digits
    train split through the hardening loop: `PGDAT` (``eps``, ``steps`` steps of
    ``2.5 * eps / steps``, random start), AdamW with a cosine schedule. Deterministic for a
    seed on one kind of machine. Returns the module in evaluation mode."""
    with deterministic_torch(seed):
        module = DigitsCNN()
    settings = HardenSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                              seed=seed, validation_fraction=0.0)
    recipe = compose([PGDAT(eps=eps, steps=steps)])
    return Hardener(module, recipe, digits_train(), settings, None, "scratch").run(
        show_progress=False)


@cache
def pgd_trained_model(seed: int = 0) -> RobustModel:
    """`train_pgd_model` as a `RobustModel`, trained once per process and seed: every test
    module that asks gets the same object (do not move or mutate it)."""
    return robust_model(train_pgd_model(seed), f"digits-cnn pgd-trained seed {seed}")
