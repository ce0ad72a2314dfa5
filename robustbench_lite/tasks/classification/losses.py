"""Margin losses of the APGD family: DLR (difference of logits ratio) and its targeted form
(Croce & Hein, ICML 2020)."""

from __future__ import annotations

import torch

from robustbench_lite.errors import AttackError

#: Added to the DLR denominators so that equal logits do not divide by zero.
DLR_EPS = 1e-12


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample untargeted DLR loss (to maximise):
    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``, ``pi`` sorting ``z`` descending.
    Needs at least 3 classes."""
    if logits.shape[1] < 3:
        raise AttackError("the DLR loss needs at least 3 classes")
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return -(true - other) / (ordered[:, 0] - ordered[:, 2] + DLR_EPS)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor,
                      target: torch.Tensor) -> torch.Tensor:
    """Per-sample targeted DLR loss (to maximise):
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``. Needs at least 4 classes."""
    if logits.shape[1] < 4:
        raise AttackError("the targeted DLR loss needs at least 4 classes")
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    toward = logits.gather(1, target[:, None]).squeeze(1)
    return -(true - toward) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + DLR_EPS)


def strongest_other(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample, the class other than ``target`` with the highest logit."""
    return logits.scatter(1, target[:, None], float("-inf")).argmax(dim=1)
