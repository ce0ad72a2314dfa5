"""The verdict: what a reviewer reads first, derived from an `AuditResult` alone.

Worst-case robust accuracy at the data family's standard eps (`matrix.presets.STANDARD_EPS`;
the largest evaluated eps of each norm when no standard one was run), the attack that broke
the most samples there, the worst sanity-check status and the outcome of ``--fail-under``.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_lite.matrix.presets import LATENT_FAMILY, headline_indices, is_standard_eps
from robustbench_lite.results import CHECK_STATUSES, AuditResult, scope

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
    objective: str | None = None  # named when the task has several (`results.scope`)
    family: str = ""  # whose standard eps ``standard`` refers to


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
                     target_mode: str | None = None, objective: str | None = None
                     ) -> tuple[str | None, float | None]:
    """The attack that broke the most samples at the threat model (norm, eps, targeted) and
    the share it broke; ties go to the earlier attack. In cascade mode each cell's accuracy
    already counts the earlier attacks, so an attack's share is the drop from the previous
    cell."""
    best: tuple[str | None, float | None] = (None, None)
    previous = clean_accuracy_of(result, objective)
    for cell in result.cells:
        if (cell.norm, cell.eps, cell.targeted, cell.target_mode, scope(cell.objective)) != (
                norm, eps, targeted, target_mode, scope(objective)) or cell.accuracy is None:
            continue
        broke = previous - cell.accuracy
        if result.mode != "full":
            previous = cell.accuracy
        if best[1] is None or broke > best[1]:
            best = (cell.attack, broke)
    return best


def _view(result: AuditResult, objective: str | None) -> dict[str, object] | None:
    """The GAN view of ``objective`` (`robustbench_lite.gan.views`), if the result has it."""
    for view in result.gan.get("views", []) if objective is not None else []:
        if view.get("objective") == objective:
            return dict(view)
    return None


def clean_accuracy_of(result: AuditResult, objective: str | None) -> float:
    """The clean accuracy the cells of ``objective`` start from: the view's for a GAN
    audit, else the audit's."""
    view = _view(result, objective)
    value = view.get("clean_accuracy") if view is not None else None
    return float(value) if isinstance(value, int | float) else result.clean_accuracy


def family_of(result: AuditResult, objective: str | None) -> str:
    """The family whose standard eps the threat models of ``objective`` use: the data's,
    or `LATENT_FAMILY` for a GAN's latent views."""
    view = _view(result, objective)
    return LATENT_FAMILY if view is not None and view.get("space") != "pixel" \
        else result.data.family


def verdict(result: AuditResult) -> Verdict:
    """The verdict of ``result``; computed, never stored in it."""
    rows = result.robust_accuracy
    groups: dict[str | None, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(scope(row.objective), []).append(index)
    threats = []
    for objective, indices in groups.items():
        family = family_of(result, objective)
        chosen = headline_indices(family, [(rows[i].norm, rows[i].eps, rows[i].targeted)
                                           for i in indices])
        for index in (indices[i] for i in chosen):
            row = rows[index]
            attack, broke = strongest_attack(result, row.norm, row.eps, row.targeted,
                                             row.target_mode, objective)
            standard = is_standard_eps(family, row.norm, row.eps)
            threats.append(HeadlineThreat(row.norm, row.eps, standard, row.accuracy, attack,
                                          broke, row.targeted, row.target_mode,
                                          row.success_rate, objective, family))
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
