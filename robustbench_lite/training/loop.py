"""A small, deterministic supervised training loop for CPU-sized models.

Determinism: a fixed seed for initialisation and shuffling, deterministic torch algorithms,
and a single intra-op thread while training, so the same command on the same kind of machine
gives the same weights. (Different CPU instruction sets may round differently; the accuracy
of the default model is checked by the test suite, not its bytes.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional
from tqdm.auto import tqdm

from robustbench_lite.data.eval_data import EvalData

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRecipe:
    """Hyperparameters of a plain training run (the defaults train the default model)."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


@contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic algorithms and one thread; restore afterwards."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic)


def train_classifier(module: nn.Module, data: EvalData, recipe: TrainingRecipe,
                     show_progress: bool = True) -> nn.Module:
    """Train ``module`` on ``data`` (inputs in [0, 1]) with Adam and cross-entropy; returns it
    in evaluation mode. The caller builds ``module`` inside `deterministic_torch` for a fully
    reproducible run."""
    generator = torch.Generator().manual_seed(recipe.seed)
    optimiser = torch.optim.AdamW(module.parameters(), lr=recipe.learning_rate,
                                  weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=recipe.epochs)
    module.train()
    for epoch in tqdm(range(recipe.epochs), desc="training", unit="epoch",
                      disable=not show_progress):
        order = torch.randperm(len(data.x), generator=generator)
        total = 0.0
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start:start + recipe.batch_size]
            loss = functional.cross_entropy(module(data.x[batch]), data.y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        logger.debug("epoch %d: loss %.4f", epoch + 1, total / len(order))
    return module.eval()


@torch.no_grad()
def accuracy(module: nn.Module, data: EvalData, batch_size: int = 512) -> float:
    """Clean accuracy of ``module`` on ``data`` (batches go to the module's device; 0 for
    no data)."""
    device = next(module.parameters()).device
    correct = sum(int((module(data.x[i:i + batch_size].to(device)).argmax(1).cpu()
                       == data.y[i:i + batch_size]).sum())
                  for i in range(0, len(data.x), batch_size))
    return correct / max(len(data.x), 1)
