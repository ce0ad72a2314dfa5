"""Transferability tables: adversarial examples crafted on one model, evaluated on every model.

For each threat model and each *source* model, an attack (PGD by default, chosen by the
caller) crafts adversarial examples on the source, white-box, for every sample; every model
(*target*), the source included, then classifies them. The diagonal (source = target) is the
source's white-box accuracy under that attack; an off-diagonal cell is the target's accuracy
against a transfer attack, i.e. an adversary without access to the target's gradients. A
surrogate of a model (`robustbench_lite.engine.surrogate.train_surrogate`) as source gives
the black-box, label-only row of that model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from robustbench_lite.attacks.base import Attack
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.execute import attack_batch, batch_seed
from robustbench_lite.errors import (
    AttackError,
    ModelDataMismatchError,
    NonFiniteOutputError,
    ThreatModelError,
)
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferRow:
    """One cell of a transfer table: examples crafted on ``source``, classified by ``target``.

    ``accuracy``: fraction of ALL samples that ``target`` classifies correctly both clean and
    on the source's adversarial example (a sample the target misclassifies clean counts as not
    robust). ``source_success``: fraction of ALL samples the source classifies correctly clean
    but not on its own adversarial example, so that the source's clean accuracy equals its
    diagonal ``accuracy`` plus ``source_success``.
    """

    source: str
    target: str
    norm: str
    eps: float
    accuracy: float
    source_success: float


def check_transferable(models: Sequence[RobustModel], data: EvalData) -> None:
    """Raise `ModelDataMismatchError` unless every model has the first model's input shape and
    class count (naming both models), and the data has that input shape and class count.

    Class counts are compared as set on the models (by `check_model_on_data`).
    """
    if not models:
        return
    first = models[0]
    for other in models[1:]:
        if (tuple(other.input_shape) != tuple(first.input_shape)
                or other.num_classes != first.num_classes):
            raise ModelDataMismatchError(
                f"models {first.name!r} (input {tuple(first.input_shape)}, {first.num_classes} "
                f"classes) and {other.name!r} (input {tuple(other.input_shape)}, "
                f"{other.num_classes} classes) cannot be compared: transfer needs the same "
                "input shape and class count")
    if tuple(data.input_shape) != tuple(first.input_shape) or \
            data.num_classes != first.num_classes:
        raise ModelDataMismatchError(
            f"the models take input {tuple(first.input_shape)} with {first.num_classes} classes "
            f"but dataset {data.name!r} has {tuple(data.input_shape)} with {data.num_classes}; "
            "use data of the models' input shape and classes")


@torch.no_grad()
def _clean_correct(model: RobustModel, data: EvalData, batch_size: int) -> torch.Tensor:
    """Per-sample clean correctness (CPU); fails clearly on NaN or infinite logits."""
    correct = []
    for start in range(0, len(data.x), batch_size):
        logits = model(data.x[start:start + batch_size].to(model.device))
        if not torch.isfinite(logits).all():
            raise NonFiniteOutputError(f"{model.name!r} returned NaN or infinite logits on "
                                       f"clean samples {start}..{start + len(logits) - 1} of "
                                       f"{data.name!r}; its weights may be corrupt")
        correct.append(logits.argmax(dim=1).cpu() == data.y[start:start + batch_size])
    return torch.cat(correct)


@torch.no_grad()
def _predict_on(model: RobustModel, x_adv: torch.Tensor) -> torch.Tensor:
    predicted: torch.Tensor = model(x_adv.to(model.device)).argmax(dim=1).cpu()
    return predicted


def transfer_table(models: Sequence[RobustModel], data: EvalData, threats: Sequence[ThreatModel],
                   attack: Attack, seed: int, batch_size: int,
                   show_progress: bool = False) -> list[TransferRow]:
    """Source x target accuracy under ``attack`` for every threat model.

    Rows come threat by threat (in ``threats`` order), then source by source, then target by
    target (both in ``models`` order): ``len(threats) * len(models) ** 2`` rows. Names are
    the models' display names; give distinct names to tell rows apart.

    For each (threat, source), ``data`` is processed ``batch_size`` samples at a time: the
    batch starting at sample ``start`` is attacked on the source with `attack_batch` (host
    verified: an invalid adversarial example is replaced by the clean image and logged) and
    seed ``batch_seed(seed, attack, threat, start)``, then every target classifies the
    verified batch before the next one is crafted; only counts are kept. All samples are
    attacked, including those the source misclassifies clean. The diagonal reuses the
    source's own re-prediction from `attack_batch`, so it equals the white-box accuracy of
    that same batching and seed. Same models, data, attack, seed and batch size give the same
    table (up to the determinism of the models on their devices).

    Raises `ModelDataMismatchError` (see `check_transferable`), `ThreatModelError` for a
    targeted threat model (transfer tables are untargeted), `AttackError` when ``attack``
    does not support a threat model; exceptions from the attack itself propagate.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    check_transferable(models, data)
    for threat in threats:
        if threat.targeted:
            raise ThreatModelError(f"transfer tables are untargeted; got {threat.label}")
        if not attack.supports(threat):
            raise AttackError(f"attack {attack.name!r} does not support {threat.label}")
    total = len(data.x)
    correct = [_clean_correct(model, data, batch_size) for model in models]
    rows: list[TransferRow] = []
    progress = tqdm(total=len(threats) * len(models) * math.ceil(total / batch_size),
                    desc="transfer", unit="batch", leave=False, disable=not show_progress)
    with progress:
        for threat in threats:
            for index, source in enumerate(models):
                robust = [0] * len(models)
                broken = 0
                problems: list[str] = []
                for start in range(0, total, batch_size):
                    stop = min(start + batch_size, total)
                    y = data.y[start:stop]
                    outcome = attack_batch(attack, source, data.x[start:stop].to(source.device),
                                           y.to(source.device), threat,
                                           batch_seed(seed, attack, threat, start))
                    problems.extend(outcome.problems)
                    for target_index, target in enumerate(models):
                        predicted = (outcome.predicted.cpu() if target_index == index
                                     else _predict_on(target, outcome.x_adv))
                        held = correct[target_index][start:stop] & (predicted == y)
                        robust[target_index] += int(held.sum())
                        if target_index == index:
                            broken += int((correct[index][start:stop] & ~held).sum())
                    progress.update(1)
                if problems:
                    logger.warning("%s on %s, %s: invalid adversarial examples (not counted): "
                                   "%s", attack.name, source.name, threat.label,
                                   "; ".join(dict.fromkeys(problems)))
                rows.extend(TransferRow(source.name, target.name, threat.norm.value, threat.eps,
                                        robust[target_index] / total, broken / total)
                            for target_index, target in enumerate(models))
                logger.info("transfer %s from %s: %s", threat.label, source.name,
                            ", ".join(f"{row.target} {row.accuracy:.2%}"
                                      for row in rows[-len(models):]))
    return rows
