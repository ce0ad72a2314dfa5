"""The verdict: what a reviewer reads first, derived from an `AuditResult` alone.

Worst-case robust accuracy at the data family's standard eps (`matrix.presets.STANDARD_EPS`;
the largest evaluated eps of each norm when no standard one was run), the attack that broke
the most samples there, the worst sanity-check status and the outcome of ``--fail-under``.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_lite.matrix.presets import headline_indices, is_standard_eps
from robustbench_lite.results import CHECK_STATUSES, AuditResult

#: ``Verdict.sanity`` when no check ran.
NOT_RUN = "not run"


@dataclass(frozen=True)
class HeadlineThreat:
    """Worst case at one threat model. ``standard`` says whether ``eps`` is the family's
    standard eps; ``strongest_broke`` is the share of all samples the strongest attack
    broke (in cascade mode: of those the earlier attacks left)."""

    norm: str
    eps: float
    standard: bool
    robust_accuracy: float
    strongest_attack: str | None
    strongest_broke: float | None
    targeted: bool = False
    target_mode: str | None = None
    success_rate: float | None = None


@dataclass(frozen=True)
class Verdict:
    """``sanity`` is the worst check status (or ``not run``); ``gates`` is ``passed``,
    ``failed`` or ``not set``."""

    clean_accuracy: float
    threats: list[HeadlineThreat]
    sanity: str
    sanity_counts: dict[str, int]
    gates: str
    gate_messages: list[str]


def strongest_attack(result: AuditResult, norm: str, eps: float, targeted: bool = False,
                     target_mode: str | None = None) -> tuple[str | None, float | None]:
    """The attack that broke the most samples at the threat model (norm, eps, targeted) and
    the share it broke; ties go to the earlier attack. In cascade mode each cell's accuracy
    already counts the earlier attacks, so an attack's share is the drop from the previous
    cell."""
    best: tuple[str | None, float | None] = (None, None)
    previous = result.clean_accuracy
    for cell in result.cells:
        if (cell.norm, cell.eps, cell.targeted, cell.target_mode) != (
                norm, eps, targeted, target_mode) or cell.accuracy is None:
            continue
        broke = previous - cell.accuracy
        if result.mode != "full":
            previous = cell.accuracy
        if best[1] is None or broke > best[1]:
            best = (cell.attack, broke)
    return best


def verdict(result: AuditResult) -> Verdict:
    """The verdict of ``result``; computed, never stored in it."""
    rows = result.robust_accuracy
    chosen = headline_indices(result.data.family,
                              [(row.norm, row.eps, row.targeted) for row in rows])
    threats = []
    for index in chosen:
        row = rows[index]
        attack, broke = strongest_attack(result, row.norm, row.eps, row.targeted,
                                         row.target_mode)
        standard = is_standard_eps(result.data.family, row.norm, row.eps)
        threats.append(HeadlineThreat(row.norm, row.eps, standard, row.accuracy, attack,
                                      broke, row.targeted, row.target_mode, row.success_rate))
    counts = {status: sum(check.status == status for check in result.checks)
              for status in CHECK_STATUSES}
    worst = [status for status in CHECK_STATUSES if counts[status]]
    failed = [gate for gate in result.gates if not gate["passed"]]
    return Verdict(
        clean_accuracy=result.clean_accuracy,
        threats=threats,
        sanity=worst[-1] if worst else NOT_RUN,
        sanity_counts=counts,
        gates="not set" if not result.gates else "failed" if failed else "passed",
        gate_messages=[str(gate["message"]) for gate in result.gates],
    )
