"""Train (or fine-tune) a network through a defense `Recipe`, with a validation split, a
per-epoch log and a checkpoint after every epoch from which an interrupted run resumes.

Determinism: everything runs inside `deterministic_torch(seed)`; the shuffling generator, the
defenses' generator and torch's global generator are saved in each checkpoint, so a resumed
run gives the same final weights as an uninterrupted one (on the same kind of machine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.base import Recipe, TrainingStep
from robustbench_lite.errors import DefenseError
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel
from robustbench_lite.training.checkpoint import load_checkpoint, save_checkpoint
from robustbench_lite.training.loop import accuracy, deterministic_torch

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"

#: Samples of the validation split that the per-epoch adversarial accuracy is measured on.
VALIDATION_ATTACK_SAMPLES = 200


@dataclass(frozen=True)
class HardenSettings:
    """Hyperparameters of a hardening run. ``validation_fraction`` of the training data is
    held out (a seeded split) for the per-epoch clean and adversarial accuracy, measured with
    PGD (10 steps) at ``validation_threat``."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    validation_fraction: float = 0.1
    validation_threat: ThreatModel = field(
        default_factory=lambda: ThreatModel(Norm.LINF, 0.1))

    def fingerprint(self, recipe: Recipe, data: EvalData, start: str) -> str:
        """What decides the run's result; a checkpoint of another run is refused."""
        fields = {**asdict(self), "validation_threat": self.validation_threat.label,
                  "defenses": [defense.fingerprint() for defense in recipe.defenses],
                  "data": data.sha256, "start": start}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()
                              ).hexdigest()


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    loss: float
    clean_accuracy: float
    adversarial_accuracy: float
    learning_rate: float
    seconds: float


def split_validation(data: EvalData, fraction: float,
                     seed: int) -> tuple[EvalData, EvalData | None]:
    """A seeded (training, validation) split of ``data``; validation gets ``fraction`` of the
    samples (at least one when ``fraction`` > 0; None when it is 0)."""
    if fraction <= 0:
        return data, None
    order = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed))
    held = max(1, round(fraction * len(data.x)))
    if held >= len(data.x):
        raise DefenseError(f"`validation_fraction` {fraction} leaves no training data")
    validation, training = order[:held].sort().values, order[held:].sort().values
    return data.take(training, f"{data.name} (training)"), \
        data.take(validation, f"{data.name} (validation)")


def _adversarial_accuracy(module: nn.Module, data: EvalData, threat: ThreatModel,
                          seed: int, device: torch.device) -> float:
    x = data.x[:VALIDATION_ATTACK_SAMPLES].to(device)
    y = data.y[:VALIDATION_ATTACK_SAMPLES].to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x_adv = PGD(steps=10).run(module, x, Misclassification(y), threat, generator)
    with torch.no_grad():
        return float((module(x_adv).argmax(1) == y).float().mean())


class Hardener:
    """One hardening run of ``module`` (already transformed by the recipe) on ``train``."""

    def __init__(self, module: nn.Module, recipe: Recipe, train: EvalData,
                 settings: HardenSettings, checkpoint_dir: Path | None, start: str) -> None:
        self.module, self.recipe, self.settings = module, recipe, settings
        self.training, self.validation = split_validation(train, settings.validation_fraction,
                                                          settings.seed)
        self.num_classes = train.num_classes
        self.checkpoint = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
        self.fingerprint = settings.fingerprint(recipe, train, start)
        for parameter in module.parameters():
            parameter.requires_grad_(True)
        self.optimiser = torch.optim.AdamW(module.parameters(), lr=settings.learning_rate,
                                           weight_decay=settings.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimiser,
                                                                   T_max=settings.epochs)
        self.device = next(module.parameters()).device
        self.order_generator = torch.Generator().manual_seed(settings.seed)
        self.defense_generator = torch.Generator(device=self.device).manual_seed(
            settings.seed + 1)
        self.log: list[EpochLog] = []

    # ------------------------------------------------------------ checkpoints

    def _save(self) -> None:
        if self.checkpoint is None:
            return
        state = {"fingerprint": self.fingerprint, "epoch": len(self.log),
                 "model": self.module.state_dict(), "optimiser": self.optimiser.state_dict(),
                 "schedule": self.schedule.state_dict(),
                 "order_generator": self.order_generator.get_state(),
                 "defense_generator": self.defense_generator.get_state(),
                 "torch_generator": torch.get_rng_state(),
                 "log": [asdict(entry) for entry in self.log]}
        save_checkpoint(self.checkpoint, state)

    def resume(self) -> int:
        """Load the checkpoint (if any) and return the number of finished epochs."""
        state = load_checkpoint(self.checkpoint, self.fingerprint, DefenseError, "`out`")
        if state is None:
            return 0
        self.module.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.order_generator.set_state(state["order_generator"])
        self.defense_generator.set_state(state["defense_generator"])
        torch.set_rng_state(state["torch_generator"])
        self.log = [EpochLog(**entry) for entry in state["log"]]
        logger.info("resuming after epoch %d of %d", len(self.log), self.settings.epochs)
        return len(self.log)

    # ------------------------------------------------------------ training

    def _epoch(self, epoch: int, show_progress: bool) -> EpochLog:
        started = time.perf_counter()
        order = torch.randperm(len(self.training.x), generator=self.order_generator)
        batches = range(0, len(order), self.settings.batch_size)
        total = 0.0
        learning_rate = self.optimiser.param_groups[0]["lr"]
        self.module.train()
        for index, start in enumerate(tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch",
                                           leave=False, disable=not show_progress)):
            chosen = order[start:start + self.settings.batch_size]
            progress = (epoch + index / len(batches)) / self.settings.epochs
            step = TrainingStep(self.module, self.training.x[chosen].to(self.device),
                                self.training.y[chosen].to(self.device), self.num_classes,
                                progress, self.defense_generator)
            loss = self.recipe.step_loss(step)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimiser.step()
            total += float(loss.detach()) * len(chosen)
        self.schedule.step()
        self.module.eval()
        clean = adversarial = math.nan  # no validation split
        if self.validation is not None:
            clean = accuracy(self.module, self.validation)
            adversarial = _adversarial_accuracy(self.module, self.validation,
                                                self.settings.validation_threat,
                                                self.settings.seed, self.device)
        return EpochLog(epoch + 1, total / len(order), clean, adversarial, learning_rate,
                        time.perf_counter() - started)

    def run(self, *, resume: bool = False, show_progress: bool = True,
            on_epoch: Callable[[EpochLog], None] | None = None) -> nn.Module:
        """Train the remaining epochs (all, unless ``resume`` finds a checkpoint), saving a
        checkpoint after each; returns the module in evaluation mode."""
        with deterministic_torch(self.settings.seed):
            done = self.resume() if resume else 0
            for epoch in tqdm(range(done, self.settings.epochs), desc="hardening",
                              unit="epoch", initial=done, total=self.settings.epochs,
                              disable=not show_progress):
                entry = self._epoch(epoch, show_progress)
                self.log.append(entry)
                if self.validation is None:
                    logger.info("epoch %d: loss %.4f", entry.epoch, entry.loss)
                else:
                    logger.info("epoch %d: loss %.4f, validation clean %.2f%%, adversarial "
                                "%.2f%%", entry.epoch, entry.loss, 100 * entry.clean_accuracy,
                                100 * entry.adversarial_accuracy)
                self._save()
                if on_epoch is not None:
                    on_epoch(entry)
        return self.module.eval()
