"""Compute one unit of work: attack the chosen samples of a shard, batch by batch, through
the host (`attack_batch`), halving the batch size when CUDA runs out of memory. A unit whose
attack cannot serve its threat model or objective is skipped with the reason."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from robustbench_lite.attacks.base import MinimumNormAttack
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.store import UnitRecord
from robustbench_lite.engine.units import WorkUnit
from robustbench_lite.errors import ThreatModelError
from robustbench_lite.host.attack import QueryCounter, attack_batch, batch_seed
from robustbench_lite.host.deadline import TimeLimitExceeded, time_limit
from robustbench_lite.host.verify import verify_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.objective import Objective
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)


@dataclass
class BatchBudget:
    """The batch size in force; halved (for the rest of the run) on CUDA out-of-memory."""

    size: int

    def halve(self, label: str) -> None:
        if self.size == 1:
            raise torch.OutOfMemoryError(f"{label}: out of memory even at batch size 1")
        self.size = max(1, self.size // 2)
        logger.warning("%s: CUDA out of memory; retrying with batch size %d", label, self.size)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _minimal_batch(unit: WorkUnit, model: RobustModel, x: torch.Tensor, y: torch.Tensor,
                   targets: torch.Tensor | None,
                   seed: int) -> tuple[torch.Tensor, int, tuple[str, ...]]:
    """Host-checked minimal distances: inf where the attack's example does not reach the
    objective or is invalid."""
    attack = unit.attack
    assert isinstance(attack, MinimumNormAttack)
    counter = QueryCounter(model)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    handed = unit.task.objective(unit.threat, y.clone(),
                                 None if targets is None else targets.clone())
    x_min = attack.find_minimal(counter, x.clone(), handed, unit.threat.norm, generator)
    # the search is unbounded: only shape, dtype, finiteness and the pixel box are checked
    verification = verify_batch(x, x_min, ThreatModel(unit.threat.norm, sys.float_info.max))
    checked = x.clone()
    if isinstance(x_min, torch.Tensor) and bool(verification.valid.any()):
        checked[verification.valid] = x_min.detach().to(x.device)[verification.valid]
    goal = unit.task.objective(unit.threat, y, targets)
    distances = MinimumNormAttack.distances(model, x, checked, goal, unit.threat.norm)
    return distances, counter.queries, verification.problems


def skip_reason(unit: WorkUnit) -> str | None:
    """Why the unit's attack cannot serve its threat model or objective; None if it can."""
    attack, threat = unit.attack, unit.threat
    if not attack.supports(threat):
        return f"{attack.name} does not support {threat.label}"
    try:
        objective: type[Objective] = unit.task.objective_type(threat)
    except ThreatModelError as exc:
        return str(exc)
    if not attack.serves(objective):
        return f"{attack.unserved_reason(objective)} (task {unit.task.name!r})"
    return None


def run_unit(model: RobustModel, data: EvalData, unit: WorkUnit, seed: int,
             budget: BatchBudget, show_progress: bool,
             time_limit_s: float | None = None, draws: int = 1) -> UnitRecord:
    """Attack the samples ``unit.attack_mask`` selects; the others are recorded as not
    robust (misclassified or already broken) with no distance. An exception from the
    attack, or running past ``time_limit_s`` seconds, fails the unit with the reason. With
    ``draws`` > 1 (a randomised model) the record holds per-sample expectation scores."""
    n = unit.stop - unit.start
    robust = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    distances = np.full(n, np.nan)
    scores = np.full((3, n), np.nan) if draws > 1 and not unit.minimal else None
    label = f"{unit.attack.name} {unit.threat.label}"
    reason = skip_reason(unit)
    if reason is not None:
        return UnitRecord(unit.key, robust, distances, 0, 0.0, skipped=reason)
    chosen = torch.nonzero(unit.attack_mask).flatten()
    if unit.minimal:
        distances[~unit.attack_mask.numpy()] = 0.0  # misclassified: broken at eps 0
    queries, violations, non_finite = 0, 0, 0
    problems: list[str] = []
    started = time.perf_counter()
    progress = tqdm(total=len(chosen), desc=label, unit="sample", leave=False,
                    disable=not show_progress)
    position = 0
    try:
        with time_limit(time_limit_s, label):
            while position < len(chosen):
                local = chosen[position:position + budget.size]
                index = local + unit.start
                x = data.x[index].to(model.device)
                y = data.y[index].to(model.device)
                targets = None if unit.targets is None \
                    else unit.targets[local].to(model.device)
                seed_here = batch_seed(seed, unit.attack, unit.threat, int(index[0]))
                try:
                    if unit.minimal:
                        found, used, issues = _minimal_batch(unit, model, x, y, targets,
                                                             seed_here)
                        distances[local.numpy()] = found.cpu().numpy()
                    else:
                        outcome = attack_batch(unit.attack, model, x, y, unit.threat,
                                               seed_here, task=unit.task, targets=targets,
                                               draws=draws)
                        robust[local.numpy()] = outcome.correct.cpu().numpy()
                        success[local.numpy()] = outcome.success.cpu().numpy()
                        distances[local.numpy()] = unit.threat.distances(outcome.x_adv,
                                                                         x).cpu()
                        used, issues = outcome.queries, outcome.problems
                        violations += int((~outcome.valid).sum())
                        non_finite += outcome.non_finite
                        if scores is not None and outcome.expectation is not None:
                            scores[:, local.numpy()] = outcome.expectation.cpu().numpy()
                except torch.OutOfMemoryError:
                    budget.halve(label)
                    continue
                queries += used
                problems.extend(issues)
                position += len(local)
                progress.update(len(local))
    except TimeLimitExceeded as exc:
        logger.warning("%s failed: %s", label, exc)
        return UnitRecord(unit.key, unit.attack_mask.numpy().copy(), np.full(n, np.nan),
                          queries, time.perf_counter() - started,
                          error=f"time limit: {exc}", storable=False)
    except Exception as exc:
        logger.warning("%s failed: %s: %s", label, type(exc).__name__, exc)
        return UnitRecord(unit.key, unit.attack_mask.numpy().copy(), np.full(n, np.nan),
                          queries, time.perf_counter() - started,
                          error=f"{type(exc).__name__}: {exc}")
    finally:
        progress.close()
    if non_finite:
        logger.warning("%s: the model returned NaN or inf on %d adversarial example(s); "
                       "the task judges them wrong", label, non_finite)
    details = list(dict.fromkeys(problems))
    if details:
        logger.warning("%s returned invalid adversarial examples (not counted): %s", label,
                       "; ".join(details))
    return UnitRecord(unit.key, robust, distances, queries, time.perf_counter() - started,
                      violations=violations, violation_details=details, success=success,
                      expectation=scores)
