"""A small generic CNN for any ``(C, H, W)`` input: the architecture of black-box surrogates."""

from __future__ import annotations

import torch
from torch import nn

#: Side of the feature map after adaptive average pooling, whatever the input size.
POOLED_SIDE = 4


class SurrogateCNN(nn.Module):
    """conv3x3(width) → ReLU → conv3x3(2·width) → ReLU → adaptive avg-pool to 4x4 →
    fc(hidden) → ReLU → fc(num_classes).

    Both convolutions keep the spatial size (padding 1), and adaptive pooling maps any
    ``H, W >= 1`` to 4x4 (smaller maps are repeated), so the network takes every
    ``(N, in_channels, H, W)`` input. With the defaults (``width=32``, ``hidden=128``) it has
    about 150k parameters plus ``9 * 32 * in_channels`` for the first convolution. Inputs are
    images in [0, 1]; there is no normalisation layer.
    """

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 32,
                 hidden: int = 128) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1 or width < 1 or hidden < 1:
            raise ValueError(f"SurrogateCNN needs positive sizes, got in_channels={in_channels}, "
                             f"num_classes={num_classes}, width={width}, hidden={hidden}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(POOLED_SIDE),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * POOLED_SIDE * POOLED_SIDE, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out
