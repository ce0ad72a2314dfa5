"""The attack grid: every (attack, threat model) cell, unit by unit, through the executor and
the result store, then the cells, the worst case per threat model, per-class results and
robustness curves.

Only samples the task judges correct on clean input (and, for a targeted threat model, that
have a target) are attacked. In the default (full) mode every attack runs on all of them
and the worst case is, per sample, robust only if every attack failed. In fast (cascade)
mode each attack runs only on the samples the earlier attacks of the same threat model left
robust, as AutoAttack does: the worst case is the same, and each cell then shows the
accuracy after that attack and all earlier ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from robustbench_lite.attacks.base import Attack, MinimumNormAttack
from robustbench_lite.checks.base import CellOutcome
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.aggregate import (
    cell_result,
    expected_scores,
    fraction,
    grid_curves,
    merge_shards,
    minimal_curve,
    per_class_rows,
    success_rate,
)
from robustbench_lite.engine.executor import Executor
from robustbench_lite.engine.runner import BatchBudget, run_unit
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.engine.store import ResultStore, UnitRecord
from robustbench_lite.engine.targets import ThreatGoal, threat_goal
from robustbench_lite.engine.units import MINIMAL_CONTEXT, WorkUnit, shards, unit_key
from robustbench_lite.errors import ThreatModelError
from robustbench_lite.host.expectation import standard_error
from robustbench_lite.host.guard import ModelGuard
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import CellResult, CurvePoint, PerClassRow, ThreatSummary
from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)


@dataclass
class GridResult:
    """The grid's tables, and each finished cell's per-sample outcome (for the checks and
    the example images)."""

    cells: list[CellResult] = field(default_factory=list)
    summaries: list[ThreatSummary] = field(default_factory=list)
    per_class: list[PerClassRow] = field(default_factory=list)
    curves: list[CurvePoint] = field(default_factory=list)
    outcomes: list[CellOutcome] = field(default_factory=list)
    goals: dict[ThreatModel, ThreatGoal] = field(default_factory=dict)


class _Runner:
    """Runs units through the executor, reading finished ones from the store."""

    def __init__(self, model: RobustModel, data: EvalData, task: Task, settings: AuditSettings,
                 store: ResultStore | None, executor: Executor,
                 guard: ModelGuard | None) -> None:
        self.model, self.data, self.task, self.settings = model, data, task, settings
        self.store, self.executor = store, executor
        self.guard = guard or ModelGuard(model.module)
        self.budget = BatchBudget(settings.batch_size)
        self.reused = 0
        self.batch_sizes: dict[str, int] = {}  # digest -> batch size when the unit finished

    def unit(self, attack: Attack, threat: ThreatModel, goal: ThreatGoal, start: int,
             stop: int, mask: torch.Tensor, context: str = "") -> WorkUnit:
        key = unit_key(attack, threat, self.task, goal.key_text, self.model.fingerprint,
                       self.data.sha256, self.settings.seed, start, stop, context,
                       self.settings.draws or 1)
        targets = None if goal.targets is None else goal.targets[start:stop].clone()
        return WorkUnit(attack, threat, start, stop, mask[start:stop].clone(), key, self.task,
                        targets)

    def _work(self, unit: WorkUnit) -> UnitRecord:
        cached = self.store.get(unit.key) if self.store is not None else None
        if cached is not None:
            self.reused += 1
            return cached
        rng = torch.get_rng_state()
        record = run_unit(self.model, self.data, unit, self.settings.seed, self.budget,
                          self.settings.show_progress, self.settings.cell_time_limit,
                          self.settings.draws or 1)
        torch.set_rng_state(rng)  # a unit's draws never depend on the units before it
        changes = self.guard.changes()
        if changes:
            self.guard.restore()
            reason = (f"the attack changed the model or torch's settings: {'; '.join(changes)}"
                      "; restored, and this cell is not counted")
            logger.warning("%s %s failed: %s", unit.attack.name, unit.threat.label, reason)
            record = replace(record, robust=unit.attack_mask.numpy().copy(),
                             distances=np.full(len(record.robust), np.nan),
                             success=None, error=reason, storable=False)
        self.batch_sizes[unit.key.digest()] = self.budget.size
        if self.store is not None and record.storable:
            self.store.put(record)
        return record

    def run(self, units: Sequence[WorkUnit], progress: tqdm) -> dict[str, UnitRecord]:
        records = {}
        for record in self.executor.run(units, self._work):
            records[record.key.digest()] = record
            progress.update(1)
        return records


def _goals(task: Task, threats: Sequence[ThreatModel], clean_outputs: torch.Tensor,
           labels: torch.Tensor, seed: int) -> dict[ThreatModel, ThreatGoal | str]:
    """Each threat model's goal, or why the task has none there."""
    goals: dict[ThreatModel, ThreatGoal | str] = {}
    for threat in threats:
        try:
            goals[threat] = threat_goal(task, threat, clean_outputs, labels, seed)
        except ThreatModelError as exc:
            goals[threat] = str(exc)
    return goals


def run_grid(model: RobustModel, data: EvalData, task: Task, attacks: Sequence[Attack],
             threats: Sequence[ThreatModel], clean_outputs: torch.Tensor,
             correct: torch.Tensor, settings: AuditSettings, store: ResultStore | None,
             executor: Executor, guard: ModelGuard | None = None,
             clean_scores: np.ndarray | None = None) -> GridResult:
    """Every cell of ``attacks`` x ``threats``; see the module docstring. After each unit
    ``guard`` (by default a snapshot taken now) checks that the attack left the model and
    torch's settings as they were; a unit that changed them fails and is not stored.
    ``clean_scores`` (``(2, n)`` selection and fresh scores over ``settings.draws`` draws)
    are given for a randomised model, which is then judged in expectation (full mode)."""
    runner = _Runner(model, data, task, settings, store, executor, guard)
    ranges = shards(len(correct), settings.shard_size)
    result = GridResult()
    correct_np = correct.numpy()
    labels = data.y.numpy()
    goals = _goals(task, threats, clean_outputs, data.y, settings.seed)
    candidates = {threat: torch.from_numpy(
        correct_np & goal.targetable(len(correct_np))) if isinstance(goal, ThreatGoal)
        else correct for threat, goal in goals.items()}
    grid = [] if settings.fast else _grid_units(runner, attacks, goals, candidates, correct)
    total = len(grid) or len(threats) * len(attacks) * len(ranges)
    with tqdm(total=total, desc="cells", unit="unit", disable=not settings.show_progress) as bar:
        records = runner.run(grid, bar) if grid else {}
        for threat in threats:
            goal = goals[threat]
            if isinstance(goal, str):
                _unserved_threat(result, attacks, threat, goal, len(correct_np))
                bar.update(0 if grid else len(attacks) * len(ranges))
                continue
            result.goals[threat] = goal
            attackable = candidates[threat].numpy()
            worst = correct_np.copy()
            reached = np.zeros_like(correct_np)
            # randomised: per sample, (selection, fresh) score of its worst example so far
            lowest = None if clean_scores is None else clean_scores.copy()
            lowest_cell = 1.0
            counted: list[str] = []
            earlier: list[str] = []
            for attack in attacks:
                attacked = torch.from_numpy(worst & attackable) if settings.fast \
                    else candidates[threat]
                context = f"cascade after: {', '.join(earlier)}" if settings.fast else ""
                units = [runner.unit(attack, threat, goal, start, stop, attacked, context)
                         for start, stop in ranges]
                if settings.fast:
                    records.update(runner.run(units, bar))
                    earlier.append(repr(attack))
                record = merge_shards([records[unit.key.digest()] for unit in units])
                scores = None if clean_scores is None else expected_scores(
                    record, attacked.numpy(), clean_scores)
                cell = cell_result(attack, threat, goal.objective, record, attacked.numpy(),
                                   correct_np, goal.targets_sha256, scores,
                                   settings.draws or 1)
                cell.batch_size = min((runner.batch_sizes[unit.key.digest()] for unit in units
                                       if unit.key.digest() in runner.batch_sizes),
                                      default=None)
                result.cells.append(cell)
                if record.error is None and record.skipped is None:
                    withstood = record.robust if goal.targets is None or record.success is None \
                        else ~record.success  # targeted: the target was not reached
                    result.outcomes.append(CellOutcome(
                        attack, threat, withstood, attacked.numpy(),
                        None if scores is None else scores[1]))
                if lowest is not None and scores is not None and cell.accuracy is not None:
                    replaced = scores[0] < lowest[0]
                    lowest[:, replaced] = scores[:, replaced]
                    lowest_cell = min(lowest_cell, cell.accuracy)
                if cell.accuracy is not None:
                    worst &= record.robust | ~attacked.numpy()
                    if record.success is not None:
                        reached |= record.success & attacked.numpy()
                    counted.append(attack.name)
                if settings.fast and cell.accuracy is not None:
                    cell.accuracy = fraction(worst)
                logger.info("%-10s %-18s accuracy %s", attack.name, threat.label,
                            "-" if cell.accuracy is None else f"{cell.accuracy:.2%}")
            summary = ThreatSummary(
                threat.norm.value, threat.eps, fraction(worst), counted, threat.targeted,
                threat.target_mode, success_rate(reached, attackable) if counted else None)
            if lowest is not None:
                # the fresh score of each sample's worst example, chosen on other draws; never
                # above a single cell's accuracy (both are estimates)
                summary.accuracy = min(fraction(lowest[1]), lowest_cell)
                summary.standard_error = standard_error(lowest[1], settings.draws or 1)
            result.summaries.append(summary)
            result.per_class += per_class_rows(
                threat, labels, correct_np if clean_scores is None else clean_scores[1],
                worst if lowest is None else lowest[1], data.class_names)
    result.curves = grid_curves(result.cells, result.summaries)
    for unit_group in _minimal_groups(grid):
        record = merge_shards([records[unit.key.digest()] for unit in unit_group])
        if record.error is None and record.skipped is None:
            norm = unit_group[0].threat.norm
            largest = max((t.eps for t in threats if t.norm is norm), default=0.0)
            result.curves += minimal_curve(unit_group[0].attack.name, norm.value,
                                           record.distances, largest)
    if runner.reused:
        logger.info("reused %d finished unit(s) from the result store", runner.reused)
    return result


def _unserved_threat(result: GridResult, attacks: Sequence[Attack], threat: ThreatModel,
                     reason: str, n_samples: int) -> None:
    """Cells skipped with ``reason``: the task has no objective at ``threat``."""
    for attack in attacks:
        result.cells.append(CellResult(
            attack=attack.name, params=attack.params, norm=threat.norm.value, eps=threat.eps,
            targeted=threat.targeted, accuracy=None, success_rate=None, n_samples=n_samples,
            mean_distance=None, max_distance=None, queries=0, seconds=0.0, skipped=reason,
            objective="", target_mode=threat.target_mode, n_attacked=0))
    logger.warning("%s: %s", threat.label, reason)


def _grid_units(runner: _Runner, attacks: Sequence[Attack],
                goals: dict[ThreatModel, ThreatGoal | str],
                candidates: dict[ThreatModel, torch.Tensor],
                correct: torch.Tensor) -> list[WorkUnit]:
    """Every unit of the full grid, plus the minimal-distance units of minimum-norm attacks
    in each norm of an untargeted threat model."""
    ranges = shards(len(correct), runner.settings.shard_size)
    served = [(threat, goal) for threat, goal in goals.items() if isinstance(goal, ThreatGoal)]
    units = [runner.unit(attack, threat, goal, start, stop, candidates[threat])
             for threat, goal in served for attack in attacks for start, stop in ranges]
    norms = dict.fromkeys(threat.norm for threat, goal in served if goal.targets is None)
    for attack in attacks:
        if not isinstance(attack, MinimumNormAttack):
            continue
        for norm in norms:
            threat = ThreatModel(norm, 0.0)
            if attack.supports(threat):
                goal = ThreatGoal(runner.task.objective_type(threat).name, None)
                units += [runner.unit(attack, threat, goal, start, stop, correct,
                                      MINIMAL_CONTEXT) for start, stop in ranges]
    return units


def _minimal_groups(units: Sequence[WorkUnit]) -> list[list[WorkUnit]]:
    groups: dict[tuple[str, str], list[WorkUnit]] = {}
    for unit in units:
        if unit.minimal:
            groups.setdefault((repr(unit.attack), unit.threat.norm.value), []).append(unit)
    return list(groups.values())
