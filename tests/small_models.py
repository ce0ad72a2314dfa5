"""Small modules shared by the tests: models that disagree with the digits data, and an
objective that is not classification."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustbench_lite.tasks.objective import Objective


class WideInputNet(nn.Module):
    """A model for (3, 32, 32) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3)
        self.fc = nn.Linear(4 * 30 * 30, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.conv(x).flatten(1))
        return out


class NaNNet(nn.Module):
    """Returns NaN logits for 10 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 10), float("nan"), device=x.device)


@dataclass(frozen=True)
class ScoreAbove(Objective):
    """Push a one-unit "score" output above 0: no labels, no classes."""

    ids: torch.Tensor

    name = "score-above"

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs[:, 0]

    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs[:, 0] > 0

    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        return -outputs[:, 0]
