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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from robustbench_lite.attacks.base import Attack
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.engine.surrogate import train_surrogate
from robustbench_lite.errors import (
    AttackError,
    ModelDataMismatchError,
    NonFiniteOutputError,
    ThreatModelError,
)
from robustbench_lite.host.attack import CLASSIFICATION, attack_batch, batch_seed
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.base import Task
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
def _clean_correct(model: RobustModel, data: EvalData, batch_size: int,
                   task: Task) -> torch.Tensor:
    """Per-sample clean correctness (CPU); fails clearly on NaN or infinite outputs."""
    correct = []
    for start in range(0, len(data.x), batch_size):
        outputs = model(data.x[start:start + batch_size].to(model.device))
        if not torch.isfinite(outputs).all():
            raise NonFiniteOutputError(f"{model.name!r} returned NaN or infinite outputs on "
                                       f"clean samples {start}..{start + len(outputs) - 1} of "
                                       f"{data.name!r}; its weights may be corrupt")
        correct.append(task.correct(outputs.cpu(), data.y[start:start + batch_size]))
    return torch.cat(correct)


@torch.no_grad()
def _correct_on(model: RobustModel, x_adv: torch.Tensor, labels: torch.Tensor,
                task: Task) -> torch.Tensor:
    return task.correct(model(x_adv.to(model.device)).cpu(), labels)


def not_transferable(threat: ThreatModel, attack: Attack) -> str | None:
    """Why the transfer table has no rows at ``threat``; None when it has."""
    if not threat.norm.is_lp:
        return (f"transfer examples are pixel perturbations inside an Lp ball, and the "
                f"{threat.norm.value} threat model has none")
    if threat.targeted:
        return "transfer tables are untargeted"
    if not attack.supports(threat):
        return f"the transfer attack {attack.name!r} does not support {threat.label}"
    return None


def transfer_table(models: Sequence[RobustModel], data: EvalData, threats: Sequence[ThreatModel],
                   attack: Attack, seed: int, batch_size: int,
                   show_progress: bool = False, task: Task = CLASSIFICATION
                   ) -> list[TransferRow]:
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
        if threat.targeted or not threat.norm.is_lp:
            raise ThreatModelError(f"transfer tables are untargeted, in an Lp ball; got "
                                   f"{threat.label}")
        if not attack.supports(threat):
            raise AttackError(f"attack {attack.name!r} does not support {threat.label}")
    total = len(data.x)
    correct = [_clean_correct(model, data, batch_size, task) for model in models]
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
                                           batch_seed(seed, attack, threat, start), task=task)
                    problems.extend(outcome.problems)
                    for target_index, target in enumerate(models):
                        still = (outcome.correct.cpu() if target_index == index
                                 else _correct_on(target, outcome.x_adv, y, task))
                        held = correct[target_index][start:stop] & still
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


@dataclass(frozen=True)
class TransferPlan:
    """The transfer stage of an audit: ``others`` are the models compared with the audited
    one; with none, a surrogate distilled from the audited model's predictions on
    ``held_out()`` (the split the audit does not evaluate; None: the evaluation data, with a
    warning) gives the black-box row."""

    attack: Attack
    others: Sequence[RobustModel] = ()
    held_out: Callable[[], EvalData] | None = field(default=None, compare=False)


def run_transfer(plan: TransferPlan, model: RobustModel, data: EvalData, task: Task,
                 threats: Sequence[ThreatModel], settings: AuditSettings,
                 note: Callable[[str, str, str, str], None]) -> list[dict[str, Any]]:
    """The transfer table's rows (as plain data) at every threat model it applies to; the
    others get a `note` saying why not."""
    usable = []
    for threat in threats:
        reason = not_transferable(threat, plan.attack)
        if reason is None:
            usable.append(threat)
        else:
            note("transfer", threat.label, "not applicable", reason)
    if not usable:
        return []
    models = [model, *plan.others]
    if len(models) == 1:
        held_out = plan.held_out() if plan.held_out is not None else data
        if held_out.sha256 == data.sha256:
            logger.warning("no held-out split for %s: the surrogate is distilled on the "
                           "evaluation data itself", data.name)
        models.append(train_surrogate(model, held_out, seed=settings.seed))
    rows = transfer_table(models, data, usable, plan.attack, settings.seed,
                          settings.batch_size, show_progress=settings.show_progress, task=task)
    return [dict(vars(row)) for row in rows]
