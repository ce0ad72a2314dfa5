"""Turn unit records into the audit's tables: cells, the per-sample worst case, per-class
results and robustness curves. Nothing here attacks or predicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustbench_lite.attacks.base import Attack
from robustbench_lite.engine.store import UnitRecord
from robustbench_lite.host.expectation import standard_error
from robustbench_lite.results import CellResult, CurvePoint, PerClassRow, ThreatSummary
from robustbench_lite.threat import ThreatModel

#: Points of a curve drawn from minimal distances, between 0 and the largest grid eps x 1.5.
CURVE_POINTS = 25


def fraction(mask: np.ndarray) -> float:
    """Exact fraction of True entries (count / total); for per-sample scores in [0, 1],
    their mean."""
    return float(mask.sum()) / len(mask) if len(mask) else 0.0


def merge_shards(records: Sequence[UnitRecord]) -> UnitRecord:
    """One record for a whole cell, from its shards in order."""
    first = records[0]
    errors = [r.error for r in records if r.error]
    details = list(dict.fromkeys(d for r in records for d in r.violation_details))
    success = [np.zeros(len(r.robust), dtype=bool) if r.success is None else r.success
               for r in records]
    scores = [r.expectation for r in records if r.expectation is not None]
    expectation = np.concatenate(scores, axis=1) if len(scores) == len(records) else None
    return UnitRecord(
        first.key, np.concatenate([r.robust for r in records]),
        np.concatenate([r.distances for r in records]),
        sum(r.queries for r in records), sum(r.seconds for r in records),
        violations=sum(r.violations for r in records), violation_details=details,
        error=errors[0] if errors else None, skipped=first.skipped,
        success=np.concatenate(success), expectation=expectation)


def success_rate(success: np.ndarray, attacked: np.ndarray) -> float | None:
    """Share of the attacked samples on which the objective was reached."""
    n_attacked = int(attacked.sum())
    return int((success & attacked).sum()) / n_attacked if n_attacked else None


def expected_scores(record: UnitRecord, attacked: np.ndarray,
                    clean: np.ndarray) -> np.ndarray | None:
    """Randomised models: ``(2, n)`` selection and fresh scores of every sample under the
    cell (the attack's example where attacked, the clean image elsewhere); None for a
    deterministic model or a failed cell."""
    if record.expectation is None or record.error or record.skipped:
        return None
    return np.where(attacked, record.expectation[:2], clean)


def cell_result(attack: Attack, threat: ThreatModel, objective: str, record: UnitRecord,
                attacked: np.ndarray, correct: np.ndarray,
                targets_sha256: str | None = None, scores: np.ndarray | None = None,
                draws: int = 1) -> CellResult:
    """The cell of ``attack`` at ``threat``; ``attacked`` marks the samples it was run on,
    ``correct`` those the task judges correct on clean input (a correct sample that was not
    attacked, for want of a target, still counts as correct). For a randomised model
    ``scores`` holds the cell's `expected_scores` over ``draws`` draws: accuracy is then the
    mean fresh score, with its standard error."""
    base = CellResult(attack=attack.name, params=attack.params, norm=threat.norm.value,
                      eps=threat.eps, targeted=threat.targeted, accuracy=None,
                      success_rate=None, n_samples=len(attacked), mean_distance=None,
                      max_distance=None, queries=record.queries, seconds=record.seconds,
                      violations=record.violations,
                      violation_details=list(record.violation_details),
                      error=record.error, skipped=record.skipped, objective=objective,
                      target_mode=threat.target_mode, n_attacked=int(attacked.sum()),
                      targets_sha256=targets_sha256)
    if record.error or record.skipped:
        return base
    measured = record.distances[attacked & np.isfinite(record.distances)]
    base.accuracy = fraction(record.robust | (correct & ~attacked))
    reached = ~record.robust if record.success is None else record.success
    base.success_rate = success_rate(reached, attacked)
    base.mean_distance = float(measured.mean()) if len(measured) else None
    base.max_distance = float(measured.max()) if len(measured) else None
    if scores is not None and record.expectation is not None:
        base.accuracy = fraction(scores[1])
        base.standard_error = standard_error(scores[1], draws)
        reached_share = record.expectation[2][attacked]
        base.success_rate = float(np.nanmean(reached_share)) if len(reached_share) else None
    return base


def per_class_rows(threat: ThreatModel, labels: np.ndarray, correct: np.ndarray,
                   robust: np.ndarray, class_names: Sequence[str]) -> list[PerClassRow]:
    rows = []
    for index, name in enumerate(class_names):
        members = labels == index
        if members.any():
            rows.append(PerClassRow(threat.norm.value, threat.eps, name, int(members.sum()),
                                    fraction(correct[members]), fraction(robust[members]),
                                    threat.targeted, threat.target_mode))
    return rows


def grid_curves(cells: Sequence[CellResult],
                summaries: Sequence[ThreatSummary]) -> list[CurvePoint]:
    """Accuracy against eps for every attack and the worst case, from the matrix's
    untargeted cells."""
    points = [CurvePoint(c.norm, c.attack, c.eps, c.accuracy) for c in cells
              if c.accuracy is not None and not c.targeted]
    points += [CurvePoint(s.norm, "worst case", s.eps, s.accuracy) for s in summaries
               if not s.targeted]
    return sorted(points, key=lambda p: (p.norm, p.attack, p.eps))


def minimal_curve(attack: str, norm: str, distances: np.ndarray,
                  largest_eps: float) -> list[CurvePoint]:
    """A dense curve from per-sample minimal distances (0 for misclassified samples, inf where
    no adversarial example was found): accuracy(eps) = share of distances above eps."""
    grid = np.linspace(0.0, 1.5 * largest_eps, CURVE_POINTS)
    return [CurvePoint(norm, attack, float(eps), fraction(distances > eps),
                       "minimal distances") for eps in grid]
