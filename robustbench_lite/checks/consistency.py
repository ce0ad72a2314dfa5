"""Checks that compare the finished cells of an audit with each other, from the evaluation
checklist of Carlini et al., "On Evaluating Adversarial Robustness" (arXiv:1902.06705, 2019)
and the flags AutoAttack raises (Croce & Hein, ICML 2020): accuracy falls as eps grows,
iterative attacks beat single-step ones, and no black-box, noise or transfer attack beats the
white-box ones. Nothing here attacks.

Comparisons of cells allow one sample (``1 / n``) on top of their margin, so that the noise
of random starts alone never fails an audit. For a randomised model, judged in expectation,
they compare mean expected correctness instead of counted samples, and allow three standard
errors of the difference (from the draws) on top of their margin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.checks.base import (
    CellOutcome,
    Check,
    CheckContext,
    CheckStage,
    strongest,
)
from robustbench_lite.host.expectation import standard_error
from robustbench_lite.results import SanityCheck, threat_label
from robustbench_lite.threat import ThreatModel

#: Share of the samples attacked by which the strongest single-step attack may beat the
#: strongest iterative one (in full mode: their difference in accuracy). On the default model
#: the closest call is Linf 0.05, where PGD beats FGSM by one sample of 442.
SINGLE_STEP_MARGIN = 0.02
#: Share of samples a non-gradient attack may break where every gradient attack failed, and
#: accuracy a transfer attack may be below the white-box attacks. On the default model
#: Square breaks one sample of 442 (0.2%) that every gradient attack misses, at Linf 0.1; on
#: a PGD-trained digits CNN facing only FGSM and 10-step PGD, 2 of 146 (1.4%). Gradient
#: masking shows as 25 points or more (Square against a quantising or JPEG-like input).
BLACK_BOX_MARGIN = 0.03
#: Float slack of accuracy comparisons (accuracies are exact fractions).
FLOAT_TOLERANCE = 1e-9

_NON_GRADIENT = (AttackKind.SCORE, AttackKind.DECISION, AttackKind.BASELINE)

#: (eps, accuracy)
_Point = tuple[float, float]


def by_threat(outcomes: Iterable[CellOutcome]) -> dict[ThreatModel, list[CellOutcome]]:
    """Outcomes grouped by threat model, in order."""
    grouped: dict[ThreatModel, list[CellOutcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.threat, []).append(outcome)
    return grouped


def threat_name(threat: ThreatModel) -> str:
    """A threat model as the report writes it: ``Linf 0.1``."""
    return threat_label(threat.norm.value, threat.eps, threat.targeted)


#: Standard errors of a difference of expectations allowed before a comparison fails.
STANDARD_ERRORS = 3.0


def expected_gap(weaker: CellOutcome, stronger: CellOutcome, over: np.ndarray,
                 draws: int) -> tuple[float, float] | None:
    """Randomised models: the mean expected correctness under ``weaker`` minus that under
    ``stronger`` over the samples ``over``, and the standard error of that difference from
    the draws; None for a deterministic model or no sample."""
    if weaker.expected is None or stronger.expected is None or not over.any():
        return None
    a, b = weaker.expected[over], stronger.expected[over]
    errors = [standard_error(scores, draws) for scores in (a, b)]
    return float(a.mean() - b.mean()), math.hypot(*errors)


def is_iterative(attack: Attack) -> bool:
    """A gradient attack that takes more than one step."""
    return attack.kind is AttackKind.GRADIENT and not attack.single_step


class MonotoneCheck(Check):
    """Every eps-ball contains the smaller ones, so accuracy cannot grow with eps beyond
    noise; in cascade mode only the worst case is comparable across eps."""

    name = "monotone in eps"
    stage = CheckStage.AFTER
    description = "Accuracy is non-increasing in eps, per attack and in the worst case."

    def run(self, context: CheckContext) -> SanityCheck | None:
        result = context.result
        if result is None:
            return None
        # one series per attack (or the worst case), norm and target mode
        series: dict[tuple[str, str, str, str | None], list[_Point]] = {}
        if result.mode == "full":
            for cell in result.cells:
                if cell.accuracy is not None:
                    key = (cell.attack, repr(sorted(cell.params.items())), cell.norm,
                           cell.target_mode if cell.targeted else None)
                    series.setdefault(key, []).append((cell.eps, cell.accuracy))
        for row in result.robust_accuracy:
            series.setdefault(("worst case", "", row.norm,
                               row.target_mode if row.targeted else None), []).append(
                (row.eps, row.accuracy))
        compared = [points for points in series.values() if len(points) > 1]
        if not compared:
            return None
        errors = [c.standard_error or 0.0 for c in result.cells] + [
            r.standard_error or 0.0 for r in result.robust_accuracy]
        tolerance = 1 / max(result.data.n_samples, 1) + FLOAT_TOLERANCE + \
            STANDARD_ERRORS * math.sqrt(2) * max(errors, default=0.0)
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
        attack, _, norm, target_mode = key
        details.update(attack=attack, norm=norm, targeted=target_mode is not None,
                       target_mode=target_mode, eps_small=smaller[0],
                       eps_large=larger[0], accuracy_small=smaller[1],
                       accuracy_large=larger[1])
        where = threat_label(norm, smaller[0], target_mode is not None, target_mode)
        return SanityCheck(self.name, "fail", f"{attack} accuracy rises from {smaller[1]:.1%} "
                           f"at {where} to {larger[1]:.1%} "
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
    fewer samples signals gradient masking or a broken iterative attack.

    Per threat model, the strongest single-step and iterative gradient attacks are compared
    by the samples each broke that the other attacked and left robust, over the samples either
    attacked. In full mode that is the difference of their accuracies; in cascade mode it
    counts what the later attack broke on the earlier one's leftovers."""

    name = "iterative beats single-step"
    stage = CheckStage.AFTER
    description = "PGD-like attacks are at least as strong as single-step ones (FGSM)."

    def run(self, context: CheckContext) -> SanityCheck | None:
        findings: list[tuple[float, str, dict[str, Any]]] = []
        for threat, outcomes in by_threat(context.outcomes).items():
            iterative = strongest(o for o in outcomes if is_iterative(o.attack))
            single = strongest(o for o in outcomes
                               if o.attack.kind is AttackKind.GRADIENT and o.attack.single_step)
            if iterative is None or single is None:
                continue
            covered = iterative.attacked | single.attacked
            n = int(covered.sum())
            names = (single.attack.name, iterative.attack.name)
            gap = expected_gap(iterative, single, covered, context.draws)
            if gap is not None:  # randomised: compare expectations
                difference, error = gap
                findings.append((difference - SINGLE_STEP_MARGIN - STANDARD_ERRORS * error,
                                 f"at {threat_name(threat)} expected accuracy under "
                                 f"{names[1]} is {difference:+.1%} (± {error:.1%}) from "
                                 f"{names[0]}'s over {n} samples",
                                 {"threat": threat_name(threat), "single_step": names[0],
                                  "iterative": names[1], "difference": difference,
                                  "standard_error": error, "samples": n}))
                continue
            single_wins, iterative_wins = _wins(single, iterative), _wins(iterative, single)
            margin = max(SINGLE_STEP_MARGIN, 1 / n) + FLOAT_TOLERANCE
            findings.append(((single_wins - iterative_wins) / n - margin,
                             f"at {threat_name(threat)} {names[0]} broke {single_wins} of {n} "
                             f"samples that the strongest iterative attack ({names[1]}) left "
                             f"robust, {names[1]} {iterative_wins} that {names[0]} left robust",
                             {"threat": threat_name(threat), "single_step": names[0],
                              "iterative": names[1], "single_step_wins": single_wins,
                              "iterative_wins": iterative_wins, "samples": n}))
        if not findings:
            return None
        excess, message, details = max(findings, key=lambda finding: finding[0])
        details["threat_models"] = len(findings)
        if excess > 0:
            return SanityCheck(self.name, "fail", f"{message}: gradient masking or a broken "
                               "iterative attack", details)
        return SanityCheck(self.name, "pass", f"iterative attacks are at least as strong as "
                           f"single-step ones at all {len(findings)} threat models (closest: "
                           f"{message})", details)


def _wins(winner: CellOutcome, loser: CellOutcome) -> int:
    """Samples ``winner`` broke that ``loser`` attacked and left robust."""
    return int((winner.attacked & ~winner.robust & loser.attacked & loser.robust).sum())


class WhiteBoxCheck(Check):
    """Gradients see more than queries, noise or a surrogate's gradients: samples a black-box,
    noise or transfer attack breaks but every white-box attack misses signal gradient
    masking."""

    name = "white box beats black box"
    stage = CheckStage.AFTER
    description = ("No black-box, transfer or noise attack succeeds where every white-box "
                   "attack failed.")

    def run(self, context: CheckContext) -> SanityCheck | None:
        findings = self._black_box(context.outcomes, context.draws) + self._transfer(context)
        if not findings:
            return None
        excess, message, details = max(findings, key=lambda finding: finding[0])
        details["comparisons"] = len(findings)
        if excess > 0:
            return SanityCheck(self.name, "fail", f"{message}: gradient masking", details)
        return SanityCheck(self.name, "pass", f"no black-box, noise or transfer attack beats "
                           f"the white-box attacks beyond noise (closest: {message})", details)

    @staticmethod
    def _black_box(outcomes: Sequence[CellOutcome],
                   draws: int = 1) -> list[tuple[float, str, dict[str, Any]]]:
        """Per threat model and non-gradient attack: samples it broke that every gradient
        attack attacked and left robust, as a share of the samples the gradient attacks
        attacked (all correctly classified ones in full mode; in cascade mode the
        non-gradient attack may have seen only the leftovers). Randomised models: how far
        its expected accuracy is below the best gradient attack's, on the same samples."""
        findings = []
        for threat, cells in by_threat(outcomes).items():
            gradient = [o for o in cells if o.attack.kind is AttackKind.GRADIENT]
            if not gradient:
                continue
            covered = np.logical_or.reduce([o.attacked for o in gradient])
            n = int(covered.sum())
            if not n:
                continue
            survived = covered & np.logical_and.reduce([o.robust | ~o.attacked
                                                        for o in gradient])
            for other in (o for o in cells if o.attack.kind in _NON_GRADIENT):
                gaps = [(gap, o) for o in gradient
                        if (gap := expected_gap(o, other, covered, draws)) is not None]
                if gaps:
                    (difference, error), best = min(gaps, key=lambda item: item[0][0])
                    findings.append((difference - BLACK_BOX_MARGIN - STANDARD_ERRORS * error,
                                     f"{other.attack.name} leaves {difference:.1%} "
                                     f"(± {error:.1%}) less expected accuracy than "
                                     f"{best.attack.name} at {threat_name(threat)}",
                                     {"attack": other.attack.name,
                                      "threat": threat_name(threat), "difference": difference,
                                      "standard_error": error, "samples": n}))
                    continue
                only = int((survived & other.attacked & ~other.robust).sum())
                share = only / n
                findings.append((share - max(BLACK_BOX_MARGIN, 1 / n) - FLOAT_TOLERANCE,
                                 f"{other.attack.name} broke {only} sample"
                                 f"{'' if only == 1 else 's'} ({share:.1%} of {n}) at "
                                 f"{threat_name(threat)} that every gradient attack left robust",
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
