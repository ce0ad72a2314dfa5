"""Judging a randomised model in expectation: each example is scored over many forward
draws, on two independent sets of draws.

A randomised model (random transformations or noise in its forward pass) has no single
prediction per input. Counting a sample as broken the first time any draw misclassifies it
turns the model's own noise into attack success. The host instead scores every example by
the fraction of ``draws`` forward passes that the task judges correct. It does so twice, on
independent draws: the *selection* score decides which attack's example is a sample's worst
case, and the *fresh* score is what is reported for it; a minimum over many noisy estimates
taken on the same draws would be biased low.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from robustbench_lite.tasks.objective import ModelFn

#: Relative change of the outputs between two identical forward passes that counts as
#: randomness (float noise of a deterministic model is far below).
RANDOM_TOLERANCE = 1e-4

#: Largest standard error (from the draws) a cell may have under the automatic draw count.
TARGET_STANDARD_ERROR = 0.01
#: Bounds of the automatic draw count.
MIN_DRAWS, MAX_DRAWS = 16, 128


@torch.no_grad()
def is_randomised(model: ModelFn, x: torch.Tensor, first: torch.Tensor | None = None) -> bool:
    """Whether two forward passes of ``x`` differ by more than float noise (``first``: the
    outputs of a pass already made)."""
    first = model(x) if first is None else first.to(x.device)
    second = model(x)
    scale = float(first.abs().max().clamp_min(1e-12)) if first.numel() else 1.0
    return bool(first.numel()) and float((first - second).abs().max()) / scale > \
        RANDOM_TOLERANCE


def automatic_draws(n_samples: int) -> int:
    """Draws per score so that a cell's standard error from the draws stays under
    `TARGET_STANDARD_ERROR`: it is at most ``0.5 / sqrt(draws * n_samples)``."""
    needed = math.ceil(0.25 / (max(n_samples, 1) * TARGET_STANDARD_ERROR ** 2))
    return max(MIN_DRAWS, min(MAX_DRAWS, needed))


@dataclass(frozen=True)
class Expectation:
    """Per-sample scores of one batch: ``selection`` and ``fresh`` (fractions of draws the
    task judged correct, on independent draws) and ``success`` (fraction of the fresh draws
    that reached the objective)."""

    selection: torch.Tensor
    fresh: torch.Tensor
    success: torch.Tensor

    def stacked(self) -> torch.Tensor:
        """``(3, n)``: selection, fresh, success."""
        return torch.stack([self.selection, self.fresh, self.success])


@torch.no_grad()
def score_over_draws(model: ModelFn, x: torch.Tensor,
                     correct: Callable[[torch.Tensor], torch.Tensor],
                     success: Callable[[torch.Tensor], torch.Tensor] | None,
                     draws: int) -> Expectation:
    """Score ``x`` over ``2 * draws`` forward passes (see the module docstring). A draw whose
    output holds NaN or inf is never correct. Without ``success`` (clean inputs: there is no
    objective) its scores are zero."""
    def judged(outputs: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(outputs.flatten(1)).all(dim=1)
        return (correct(outputs) & finite).float()

    selection = torch.stack([judged(model(x)) for _ in range(draws)]).mean(dim=0)
    fresh_correct, fresh_success = [], []
    for _ in range(draws):
        outputs = model(x)
        fresh_correct.append(judged(outputs))
        fresh_success.append(torch.zeros(len(x), device=x.device) if success is None
                             else success(outputs).float())
    return Expectation(selection, torch.stack(fresh_correct).mean(dim=0),
                       torch.stack(fresh_success).mean(dim=0))


def standard_error(scores: np.ndarray, draws: int) -> float:
    """Standard error, from the draws, of the mean of per-sample ``scores`` (each the mean
    of ``draws`` Bernoulli draws; NaN entries count as exact)."""
    if draws <= 1 or not len(scores):
        return 0.0
    p = np.nan_to_num(scores.astype(np.float64))
    variance = p * (1 - p) / (draws - 1)
    return float(math.sqrt(variance.sum()) / len(scores))
