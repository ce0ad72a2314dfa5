"""Input transformations placed in front of a classifier (the ``input-transform`` defense).

Each step maps a batch in [0, 1] to a batch of the same shape, written with torch operations
only, so that ``torch.jit.trace`` records them: the random steps draw with ``torch.rand_like``
/ ``torch.randn_like`` inside ``forward`` and stay random in the saved TorchScript, and the
quantising steps call ``torch.round``, whose gradient is zero almost everywhere (the
gradient masking that the audit's "differentiable preprocessing" check flags and BPDA
undoes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

#: Side of the JPEG blocks.
BLOCK = 8

#: The JPEG standard's luminance quantisation table (ITU-T T.81 Annex K, quality 50), for
#: pixel values 0..255.
LUMINANCE_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)


def dct_basis(size: int = BLOCK) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``C`` of ``size`` points: ``C @ block @ C.T`` are the
    block's 2-D coefficients and ``C.T @ coefficients @ C`` restores it."""
    frequency = torch.arange(size, dtype=torch.float64)[:, None]
    position = torch.arange(size, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (2 * position + 1) * frequency / (2 * size))
    scale = torch.full((size, 1), math.sqrt(2 / size), dtype=torch.float64)
    scale[0] = math.sqrt(1 / size)
    return (basis * scale).float()


def quantisation_table(quality: int) -> torch.Tensor:
    """The luminance table scaled to ``quality`` (1..100) by the Independent JPEG Group's
    rule (``5000 / q`` percent below 50, ``200 - 2q`` percent from 50), entries at least 1,
    in units of pixels in [0, 1]."""
    percent = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = torch.tensor(LUMINANCE_TABLE, dtype=torch.float32)
    return torch.floor((table * percent + 50) / 100).clamp(min=1) / 255


class BitDepth(nn.Module):
    """Bit-depth reduction (Xu, Evans & Qi, "Feature Squeezing", NDSS 2018): every value
    rounded to the nearest of ``2 ** bits`` evenly spaced levels of [0, 1]."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.steps = float(2 ** bits - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x.clamp(0, 1) * self.steps) / self.steps

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class JpegLike(nn.Module):
    """JPEG-like block quantisation (Dziugaite et al. 2016; Das et al. 2017; Guo et al.,
    ICLR 2018), per channel: each 8x8 block (the image edge-padded to whole blocks) goes to
    the DCT domain, its coefficients are rounded to multiples of the quality-scaled
    luminance table, and it is transformed back and clamped to [0, 1]. No chroma
    subsampling and no entropy coding: only the lossy step of JPEG."""

    basis: torch.Tensor
    table: torch.Tensor

    def __init__(self, quality: int) -> None:
        super().__init__()
        self.quality = quality
        self.register_buffer("basis", dct_basis())
        self.register_buffer("table", quantisation_table(quality))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pad_h, pad_w = -h % BLOCK, -w % BLOCK
        if pad_h or pad_w:
            x = functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        rows, cols = (h + pad_h) // BLOCK, (w + pad_w) // BLOCK
        blocks = (x - 0.5).reshape(n, c, rows, BLOCK, cols, BLOCK).transpose(3, 4)
        coefficients = self.basis @ blocks @ self.basis.T
        quantised = torch.round(coefficients / self.table) * self.table
        restored = (self.basis.T @ quantised @ self.basis).transpose(3, 4)
        image = restored.reshape(n, c, rows * BLOCK, cols * BLOCK)[:, :, :h, :w]
        return (image + 0.5).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"quality={self.quality}"


class ResizePad(nn.Module):
    """Random resizing and padding (Xie, Wang, Zhang, Ren & Yuille, "Mitigating Adversarial
    Effects Through Randomization", ICLR 2018), for a classifier of fixed input size: each
    image is resized to a random whole number of pixels ``s`` between its height ``h`` and
    ``S = round(h * max_scale)``, placed at a random whole-pixel offset on an ``S x S``
    canvas of zeros, and the canvas is resized back to ``h x w``, all in one bilinear
    resampling (``grid_sample``). Every image of a batch draws its own size and offset on
    every call."""

    def __init__(self, max_scale: float) -> None:
        super().__init__()
        self.max_scale = max_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = int(x.shape[-2])  # a constant of the trace: the input size is fixed
        canvas = max(h + 1, round(h * self.max_scale))
        first = x[:, 0, 0, 0]  # one draw per image, as traced ops (re-drawn on every call)
        size = h + torch.floor(torch.rand_like(first) * (canvas - h + 1)).clamp(max=canvas - h)
        free = canvas - size
        top = torch.minimum(torch.floor(torch.rand_like(first) * (free + 1)), free)
        left = torch.minimum(torch.floor(torch.rand_like(first) * (free + 1)), free)
        half = size / canvas  # half-width of the image on the canvas, in [-1, 1] coordinates
        centre_x = -1 + (2 * left + size) / canvas
        centre_y = -1 + (2 * top + size) / canvas
        zero = torch.zeros_like(half)
        theta = torch.stack([torch.stack([1 / half, zero, -centre_x / half], dim=1),
                             torch.stack([zero, 1 / half, -centre_y / half], dim=1)], dim=1)
        grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
        return functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                      align_corners=False)

    def extra_repr(self) -> str:
        return f"max_scale={self.max_scale}"


class GaussianNoise(nn.Module):
    """Fresh Gaussian noise of standard deviation ``sigma`` on every call, clamped to
    [0, 1]."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class Preprocessed(nn.Module):
    """``model(steps(x))``: the transformation steps in order, then the classifier. The
    steps come first, so the audit's probes meet them before any layer of ``model``."""

    def __init__(self, steps: Sequence[nn.Module], model: nn.Module) -> None:
        super().__init__()
        self.steps = nn.Sequential(*steps)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(self.steps(x))
        return out
