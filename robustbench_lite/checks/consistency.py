"""Checks that compare the finished cells of an audit with each other, from the evaluation
checklist of Carlini et al., "On Evaluating Adversarial Robustness" (arXiv:1902.06705, 2019)
and the flags AutoAttack raises (Croce & Hein, ICML 2020): accuracy falls as eps grows,
iterative attacks beat single-step ones, and no black-box, noise or transfer attack beats the
white-box ones. Nothing here attacks.

Comparisons of cells allow one sample (``1 / n``) on top of their margin, so that the noise
of random starts alone never fails an audit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.checks.base import CellOutcome, Check, CheckContext, CheckStage
from robustbench_lite.results import SanityCheck, threat_label
from robustbench_lite.threat import ThreatModel

#: Robust share by which the best iterative attack may trail the best single-step one.
SINGLE_STEP_MARGIN = 0.02
#: Share of samples a non-gradient attack may break where every gradient attack failed, and
#: accuracy a transfer attack may be below the white-box attacks.
BLACK_BOX_MARGIN = 0.01
#: Float slack of accuracy comparisons (accuracies are exact fractions).
FLOAT_TOLERANCE = 1e-9

_NON_GRADIENT = (AttackKind.SCORE, AttackKind.DECISION, AttackKind.BASELINE)

#: (eps, accuracy)
_Point = tuple[float, float]


def robust_rate(outcome: CellOutcome, mask: np.ndarray | None = None) -> float | None:
    """Share of the samples attacked (and in ``mask``) that stayed robust; None if none."""
    chosen = outcome.attacked if mask is None else outcome.attacked & mask
    n = int(chosen.sum())
    return int(outcome.robust[chosen].sum()) / n if n else None


def strongest(outcomes: Iterable[CellOutcome]) -> CellOutcome | None:
    """The outcome with the lowest robust rate among the samples it attacked."""
    rated = [(rate, index, outcome) for index, outcome in enumerate(outcomes)
             if (rate := robust_rate(outcome)) is not None]
    return min(rated, key=lambda item: item[:2])[2] if rated else None


def by_threat(outcomes: Iterable[CellOutcome]) -> dict[ThreatModel, list[CellOutcome]]:
    """Outcomes grouped by threat model, in order."""
    grouped: dict[ThreatModel, list[CellOutcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.threat, []).append(outcome)
    return grouped


def threat_name(threat: ThreatModel) -> str:
    """A threat model as the report writes it: ``Linf 0.1``."""
    return threat_label(threat.norm.value, threat.eps, threat.targeted)


def is_iterative(attack: Attack) -> bool:
    """A gradient attack that takes more than one step."""
    return attack.kind is AttackKind.GRADIENT and not attack.single_step


class MonotoneCheck(Check):
    """Every eps-ball contains the smaller ones, so accuracy cannot grow with eps beyond
    noise; in cascade mode only the worst case is comparable across eps."""

    name = "monotone-in-eps"
    stage = CheckStage.AFTER
    description = "Accuracy is non-increasing in eps, per attack and in the worst case."

    def run(self, context: CheckContext) -> SanityCheck | None:
        result = context.result
        if result is None:
            return None
        series: dict[tuple[str, str, str, bool], list[_Point]] = {}
        if result.mode == "full":
            for cell in result.cells:
                if cell.accuracy is not None:
                    key = (cell.attack, repr(sorted(cell.params.items())), cell.norm,
                           cell.targeted)
                    series.setdefault(key, []).append((cell.eps, cell.accuracy))
        for row in result.robust_accuracy:
            series.setdefault(("worst case", "", row.norm, row.targeted), []).append(
                (row.eps, row.accuracy))
        compared = [points for points in series.values() if len(points) > 1]
        if not compared:
            return None
        tolerance = 1 / max(result.data.n_samples, 1) + FLOAT_TOLERANCE
        rises = [(larger[1] - smaller[1], key, smaller, larger)
                 for key, points in series.items()
                 for smaller, larger in _rises(sorted(points))]
        worst = max(rises, key=lambda rise: rise[0], default=None)
        details: dict[str, Any] = {"series": len(compared), "tolerance": tolerance,
                                   "largest_increase": worst[0] if worst else 0.0}
        if worst is None or worst[0] <= tolerance:
            scope = "every attack and the worst case" if result.mode == "full" \
                else "the worst case (cascade mode)"
            return SanityCheck(self.name, "pass", f"accuracy never grows with eps by more than "
                               f"one sample ({scope}, {len(compared)} series)", details)
        _, key, smaller, larger = worst
        attack, _, norm, targeted = key
        details.update(attack=attack, norm=norm, targeted=targeted, eps_small=smaller[0],
                       eps_large=larger[0], accuracy_small=smaller[1],
                       accuracy_large=larger[1])
        return SanityCheck(self.name, "fail", f"{attack} accuracy rises from {smaller[1]:.1%} "
                           f"at {threat_label(norm, smaller[0], targeted)} to {larger[1]:.1%} "
                           f"at eps={larger[0]:g}: a larger eps-ball contains the smaller one, "
                           "so the attack is unreliable there", details)


def _rises(points: Sequence[_Point]) -> Iterator[tuple[_Point, _Point]]:
    """Each (eps, accuracy) point after the first, paired with the lowest-accuracy point
    at a smaller eps, where accuracy went up."""
    lowest = points[0]
    for point in points[1:]:
        if point[1] > lowest[1] and point[0] > lowest[0]:
            yield lowest, point
        if point[1] < lowest[1]:
            lowest = point


class IterativeCheck(Check):
    """A single-step attack is one step of an iterative one: an iterative attack that breaks
    fewer samples signals gradient masking or a broken iterative attack."""

    name = "iterative-beats-single-step"
    stage = CheckStage.AFTER
    description = "PGD-like attacks are at least as strong as single-step ones (FGSM)."

    def run(self, context: CheckContext) -> SanityCheck | None:
        compared: list[tuple[float, float, float, int, CellOutcome, CellOutcome]] = []
        for outcomes in by_threat(context.outcomes).values():
            iterative = strongest(o for o in outcomes if is_iterative(o.attack))
            single = strongest(o for o in outcomes
                               if o.attack.kind is AttackKind.GRADIENT and o.attack.single_step)
            if iterative is None or single is None:
                continue
            both = iterative.attacked & single.attacked
            iterative_rate, single_rate = robust_rate(iterative, both), robust_rate(single, both)
            if iterative_rate is None or single_rate is None:
                continue
            n = int(both.sum())
            margin = max(SINGLE_STEP_MARGIN, 1 / n) + FLOAT_TOLERANCE
            compared.append((iterative_rate - single_rate - margin, iterative_rate, single_rate,
                             n, iterative, single))
        if not compared:
            return None
        excess, iterative_rate, single_rate, n, iterative, single = max(
            compared, key=lambda item: item[0])
        details: dict[str, Any] = {
            "threat_models": len(compared), "threat": threat_name(iterative.threat),
            "iterative": iterative.attack.name, "single_step": single.attack.name,
            "iterative_robust": iterative_rate, "single_step_robust": single_rate, "samples": n}
        if excess > 0:
            return SanityCheck(self.name, "fail", f"at {threat_name(iterative.threat)} "
                               f"{single.attack.name} leaves {single_rate:.1%} of {n} samples "
                               f"robust, the strongest iterative attack ({iterative.attack.name}) "
                               f"{iterative_rate:.1%}: gradient masking or a broken iterative "
                               "attack", details)
        return SanityCheck(self.name, "pass", f"the strongest iterative attack is at least as "
                           f"strong as single-step ones at all {len(compared)} threat models "
                           f"(closest: {iterative.attack.name} {iterative_rate:.1%} vs "
                           f"{single.attack.name} {single_rate:.1%} at "
                           f"{threat_name(iterative.threat)})", details)


class WhiteBoxCheck(Check):
    """Gradients see more than queries, noise or a surrogate's gradients: samples a black-box,
    noise or transfer attack breaks but every white-box attack misses signal gradient
    masking."""

    name = "white-box-beats-black-box"
    stage = CheckStage.AFTER
    description = ("No black-box, transfer or noise attack succeeds where every white-box "
                   "attack failed.")

    def run(self, context: CheckContext) -> SanityCheck | None:
        findings = self._black_box(context.outcomes) + self._transfer(context)
        if not findings:
            return None
        excess, message, details = max(findings, key=lambda item: item[0])
        details["comparisons"] = len(findings)
        if excess > 0:
            return SanityCheck(self.name, "fail", f"{message}: gradient masking", details)
        return SanityCheck(self.name, "pass", f"no black-box, noise or transfer attack beats "
                           f"the white-box attacks beyond noise (closest: {message})", details)

    @staticmethod
    def _black_box(outcomes: Sequence[CellOutcome]) -> list[tuple[float, str, dict[str, Any]]]:
        """Per threat model and non-gradient attack: samples it broke that every gradient
        attack left robust, among those all of them attacked."""
        findings = []
        for threat, cells in by_threat(outcomes).items():
            gradient = [o for o in cells if o.attack.kind is AttackKind.GRADIENT]
            if not gradient:
                continue
            attacked = np.logical_and.reduce([o.attacked for o in gradient])
            survived = np.logical_and.reduce([o.robust | ~o.attacked for o in gradient])
            for other in (o for o in cells if o.attack.kind in _NON_GRADIENT):
                common = attacked & other.attacked
                n = int(common.sum())
                if not n:
                    continue
                only = int((common & survived & ~other.robust).sum())
                share = only / n
                findings.append((share - max(BLACK_BOX_MARGIN, 1 / n) - FLOAT_TOLERANCE,
                                 f"{other.attack.name} broke {only} samples ({share:.1%} of "
                                 f"{n}) at {threat_name(threat)} that every gradient attack "
                                 "left robust",
                                 {"attack": other.attack.name, "threat": threat_name(threat),
                                  "broken_only_by_it": only, "samples": n, "share": share}))
        return findings

    @staticmethod
    def _transfer(context: CheckContext) -> list[tuple[float, str, dict[str, Any]]]:
        """Per transfer row into the audited model: its accuracy against the white-box one."""
        result = context.result
        if result is None:
            return []
        tolerance = max(BLACK_BOX_MARGIN, 1 / max(result.data.n_samples, 1)) + FLOAT_TOLERANCE
        findings = []
        for row in result.transfer:
            if row.get("target") != result.model.name or row.get("source") == result.model.name:
                continue
            white_box = _white_box_accuracy(context, str(row["norm"]), float(row["eps"]))
            if white_box is None:
                continue
            transferred = float(row["accuracy"])
            threat = threat_label(str(row["norm"]), float(row["eps"]))
            findings.append((white_box - transferred - tolerance,
                             f"examples transferred from {row['source']} leave "
                             f"{transferred:.1%} accuracy at {threat}, the white-box attacks "
                             f"{white_box:.1%}",
                             {"source": str(row["source"]), "threat": threat,
                              "transfer_accuracy": transferred,
                              "white_box_accuracy": white_box}))
        return findings


def _white_box_accuracy(context: CheckContext, norm: str, eps: float) -> float | None:
    """Lowest accuracy of a gradient cell at untargeted ``norm`` ``eps`` (full mode), or the
    worst case there (cascade mode, where cells are cumulative)."""
    result = context.result
    if result is None:
        return None
    if result.mode != "full":
        return next((row.accuracy for row in result.robust_accuracy if row.norm == norm
                     and not row.targeted and math.isclose(row.eps, eps, rel_tol=1e-9)), None)
    accuracies = [float(outcome.robust.mean()) for outcome in context.outcomes
                  if outcome.attack.kind is AttackKind.GRADIENT
                  and outcome.threat.norm.value == norm and not outcome.threat.targeted
                  and math.isclose(outcome.threat.eps, eps, rel_tol=1e-9)]
    return min(accuracies, default=None)
