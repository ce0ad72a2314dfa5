"""The audit: clean accuracy, then every (attack, threat model) cell, then the worst case,
per-class results and robustness curves.

Work is split into units (`robustbench_lite.engine.units`) that an executor runs; each
finished unit is kept in the result store, so a rerun skips it. Only samples the model
classifies correctly are attacked. In the default (full) mode every attack runs on all of
them and the worst case is, per sample, robust only if every attack failed. In fast
(cascade) mode each attack runs only on the samples the earlier attacks of the same threat
model left robust, as AutoAttack does: the worst case is the same, and each cell then shows
the accuracy after that attack and all earlier ones.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import torch
from tqdm.auto import tqdm

from robustbench_lite.attacks.base import Attack, MinimumNormAttack
from robustbench_lite.checks.base import CellOutcome, Check, CheckStage, strongest
from robustbench_lite.checks.runner import adaptive_attacks, probe_context, run_checks
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.aggregate import (
    cell_result,
    fraction,
    grid_curves,
    merge_shards,
    minimal_curve,
    per_class_rows,
)
from robustbench_lite.engine.examples import capture_examples, choose_samples
from robustbench_lite.engine.executor import Executor, InProcessExecutor
from robustbench_lite.engine.runner import BatchBudget, run_unit
from robustbench_lite.engine.store import ResultStore, UnitRecord
from robustbench_lite.engine.units import MINIMAL_CONTEXT, WorkUnit, shards, unit_key
from robustbench_lite.errors import NonFiniteOutputError
from robustbench_lite.matrix.presets import headline_indices
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import (
    AdversarialExample,
    AuditResult,
    CellResult,
    CurvePoint,
    DataInfo,
    ModelInfo,
    PerClassRow,
    RunInfo,
    ThreatSummary,
)
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditSettings:
    seed: int = 0
    batch_size: int = 128
    show_progress: bool = True
    command: str = ""
    fast: bool = False
    shard_size: int | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    examples: int = 6


@torch.no_grad()
def clean_predictions(model: RobustModel, data: EvalData, batch_size: int) -> torch.Tensor:
    """Predicted labels on clean data; fails clearly on NaN or infinite logits."""
    predictions = []
    for start in range(0, len(data.x), batch_size):
        logits = model(data.x[start:start + batch_size].to(model.device))
        if not torch.isfinite(logits).all():
            raise NonFiniteOutputError(f"the model returned NaN or infinite logits on clean "
                                       f"samples {start}..{start + len(logits) - 1} of "
                                       f"{data.name!r}; its weights may be corrupt")
        predictions.append(logits.argmax(dim=1).cpu())
    return torch.cat(predictions)


class _Runner:
    """Runs units through the executor, reading finished ones from the store."""

    def __init__(self, model: RobustModel, data: EvalData, settings: AuditSettings,
                 store: ResultStore | None, executor: Executor) -> None:
        self.model, self.data, self.settings = model, data, settings
        self.store, self.executor = store, executor
        self.budget = BatchBudget(settings.batch_size)
        self.reused = 0
        self.batch_sizes: dict[str, int] = {}  # digest -> batch size when the unit finished

    def unit(self, attack: Attack, threat: ThreatModel, start: int, stop: int,
             mask: torch.Tensor, context: str = "") -> WorkUnit:
        key = unit_key(attack, threat, self.model.sha256, self.data.sha256, self.settings.seed,
                       start, stop, context)
        return WorkUnit(attack, threat, start, stop, mask[start:stop].clone(), key)

    def _work(self, unit: WorkUnit) -> UnitRecord:
        cached = self.store.get(unit.key) if self.store is not None else None
        if cached is not None:
            self.reused += 1
            return cached
        record = run_unit(self.model, self.data, unit, self.settings.seed, self.budget,
                          self.settings.show_progress)
        self.batch_sizes[unit.key.digest()] = self.budget.size
        if self.store is not None:
            self.store.put(record)
        return record

    def run(self, units: Sequence[WorkUnit], progress: tqdm) -> dict[str, UnitRecord]:
        records = {}
        for record in self.executor.run(units, self._work):
            records[record.key.digest()] = record
            progress.update(1)
        return records


def _grid_units(runner: _Runner, attacks: Sequence[Attack], threats: Sequence[ThreatModel],
                correct: torch.Tensor) -> list[WorkUnit]:
    ranges = shards(len(correct), runner.settings.shard_size)
    units = [runner.unit(attack, threat, start, stop, correct)
             for threat in threats for attack in attacks for start, stop in ranges]
    for attack in attacks:
        if not isinstance(attack, MinimumNormAttack):
            continue
        for norm in dict.fromkeys(t.norm for t in threats):
            threat = ThreatModel(norm, 0.0)
            if attack.supports(threat):
                units += [runner.unit(attack, threat, start, stop, correct, MINIMAL_CONTEXT)
                          for start, stop in ranges]
    return units


def _cell_record(records: dict[str, UnitRecord], units: Sequence[WorkUnit]) -> UnitRecord:
    return merge_shards([records[unit.key.digest()] for unit in units])


def run_audit(model: RobustModel, data: EvalData, attacks: Sequence[Attack],
              threats: Sequence[ThreatModel], settings: AuditSettings,
              plugins: list[dict[str, str | None]], *, store: ResultStore | None = None,
              executor: Executor | None = None, checks: Sequence[Check] = (),
              extend: Callable[[AuditResult], None] | None = None) -> AuditResult:
    """Evaluate ``model`` on ``data`` under every attack x threat model. ``before`` checks
    probe the model first (their adaptations add ``NAME+TAG`` gradient attacks); ``extend``
    may add to the result (the transfer table); then ``after`` checks read it."""
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    correct = clean_predictions(model, data, settings.batch_size) == data.y
    checking = probe_context(model, data, attacks, threats, correct, settings.seed)
    findings = run_checks(checks, CheckStage.BEFORE, checking)
    attacks = [*attacks, *adaptive_attacks(attacks, checking)]
    runner = _Runner(model, data, settings, store, executor or InProcessExecutor())
    ranges = shards(len(correct), settings.shard_size)
    cells: list[CellResult] = []
    summaries: list[ThreatSummary] = []
    per_class: list[PerClassRow] = []
    correct_np = correct.numpy()
    labels = data.y.numpy()
    outcomes: list[CellOutcome] = []  # the finished cells, per sample
    grid = [] if settings.fast else _grid_units(runner, attacks, threats, correct)
    total = len(grid) or len(threats) * len(attacks) * len(ranges)
    with tqdm(total=total, desc="cells", unit="unit", disable=not settings.show_progress) as bar:
        records = runner.run(grid, bar) if grid else {}
        for threat in threats:
            worst = correct_np.copy()
            counted: list[str] = []
            earlier: list[str] = []
            for attack in attacks:
                attacked = torch.from_numpy(worst.copy()) if settings.fast else correct
                context = f"cascade after: {', '.join(earlier)}" if settings.fast else ""
                units = [runner.unit(attack, threat, start, stop, attacked, context)
                         for start, stop in ranges]
                if settings.fast:
                    records.update(runner.run(units, bar))
                    earlier.append(repr(attack))
                record = _cell_record(records, units)
                cell = cell_result(attack, threat, record, attacked.numpy())
                cell.batch_size = min((runner.batch_sizes[unit.key.digest()] for unit in units
                                       if unit.key.digest() in runner.batch_sizes),
                                      default=None)
                cells.append(cell)
                if record.error is None and record.skipped is None:
                    outcomes.append(CellOutcome(attack, threat, record.robust,
                                                attacked.numpy()))
                if cell.accuracy is not None:
                    worst &= record.robust | ~attacked.numpy()
                    counted.append(attack.name)
                if settings.fast and cell.accuracy is not None:
                    cell.accuracy = fraction(worst)
                logger.info("%-10s %-18s accuracy %s", attack.name, threat.label,
                            "-" if cell.accuracy is None else f"{cell.accuracy:.2%}")
            summaries.append(ThreatSummary(threat.norm.value, threat.eps, fraction(worst),
                                           counted, threat.targeted))
            per_class += per_class_rows(threat, labels, correct_np, worst, data.class_names)
    curves: list[CurvePoint] = grid_curves(cells, summaries)
    for unit_group in _minimal_groups(grid):
        record = _cell_record(records, unit_group)
        if record.error is None:
            norm = unit_group[0].threat.norm
            largest = max((t.eps for t in threats if t.norm is norm), default=0.0)
            curves += minimal_curve(unit_group[0].attack.name, norm.value, record.distances,
                                    largest)
    if runner.reused:
        logger.info("reused %d finished unit(s) from the result store", runner.reused)
    result = AuditResult(
        model=ModelInfo(model.name, model.sha256, model.load_info.format,
                        model.load_info.trusted, model.load_info.architecture,
                        model.num_classes, list(model.input_shape),
                        list(model.load_info.notes)),
        data=DataInfo(data.name, data.sha256, len(data.x), data.source, data.family,
                      list(data.class_names)),
        clean_accuracy=fraction(correct_np),
        cells=cells,
        robust_accuracy=summaries,
        run=RunInfo(settings.seed, str(model.device), settings.batch_size, settings.command,
                    started_at, time.perf_counter() - started, environment_versions(),
                    plugins),
        matrix=dict(settings.matrix),
        mode="fast (cascade)" if settings.fast else "full",
        per_class=per_class,
        curves=curves,
        examples=_headline_examples(model, data, threats, outcomes, settings),
    )
    if extend is not None:
        extend(result)
    checking.result = result
    checking.outcomes = [o for o in outcomes if o.threat.norm.is_lp]  # checks reason in Lp
    result.checks = findings + run_checks(checks, CheckStage.AFTER, checking)
    return result


def _headline_examples(model: RobustModel, data: EvalData, threats: Sequence[ThreatModel],
                       outcomes: Sequence[CellOutcome],
                       settings: AuditSettings) -> list[AdversarialExample]:
    """Example images from the attack that broke the most samples at the verdict's first
    threat model (`headline_indices`) and, when the audit has one elsewhere, at the first
    semantic threat model (whose examples are new images, worth seeing)."""
    if not threats or settings.examples <= 0:
        return []
    shown = [threats[headline_indices(data.family, [(t.norm.value, t.eps, t.targeted)
                                                    for t in threats])[0]]]
    semantic = next((t for t in threats if not t.norm.is_lp), None)
    if semantic is not None and semantic not in shown:
        shown.append(semantic)
    examples: list[AdversarialExample] = []
    for threat in shown:
        best = strongest(outcome for outcome in outcomes if outcome.threat == threat)
        if best is not None:
            chosen = choose_samples(best.attacked & ~best.robust, best.attacked,
                                    data.y.numpy(), settings.examples)
            examples += capture_examples(model, data, best.attack, threat, chosen,
                                         settings.seed)
    return examples


def _minimal_groups(units: Sequence[WorkUnit]) -> list[list[WorkUnit]]:
    groups: dict[tuple[str, str], list[WorkUnit]] = {}
    for unit in units:
        if unit.minimal:
            groups.setdefault((repr(unit.attack), unit.threat.norm.value), []).append(unit)
    return list(groups.values())


def environment_versions() -> dict[str, str]:
    from robustbench_lite import __version__

    return {"robustbench_lite": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform()}
