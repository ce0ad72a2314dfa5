"""Fold input normalisation into the model so that attacks work in pixel space [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustbench_lite.errors import ModelLoadError


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for ``x`` in [0, 1]; mean and std are per channel."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ModelLoadError(f"`mean` has {len(mean)} values but `std` has {len(std)}; "
                                 "give one value per channel to both")
        if any(s <= 0 for s in std):
            raise ModelLoadError(f"`std` values must be positive, got {list(std)}")
        self.model = model
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model((x - self.mean) / self.std)
        return out
