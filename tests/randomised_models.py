"""Randomised defenses of the kind reviewers meet, for the tests: every forward pass shifts
some images by one pixel and adds Gaussian noise, then runs the wrapped classifier."""

from __future__ import annotations

import torch
from torch import nn


class RandomShiftNoise(nn.Module):
    """Each sample is shifted by one pixel (in a random direction) with probability
    ``shift_probability``, then gets Gaussian noise of std ``sigma`` (clipped to [0, 1]);
    a fresh draw every forward pass."""

    def __init__(self, inner: nn.Module, sigma: float, shift_probability: float) -> None:
        super().__init__()
        self.inner, self.sigma, self.shift_probability = inner, sigma, shift_probability

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        offsets = torch.randint(-1, 2, (n, 2), device=x.device)
        offsets[torch.rand(n, device=x.device) >= self.shift_probability] = 0
        shifted = x
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == dx == 0:
                    continue
                chosen = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
                rolled = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
                shifted = torch.where(chosen.view(-1, *([1] * (x.dim() - 1))), rolled, shifted)
        noisy = (shifted + self.sigma * torch.randn_like(shifted)).clamp(0, 1)
        out: torch.Tensor = self.inner(noisy)
        return out
