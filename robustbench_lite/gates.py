"""Release gates: ``--fail-under`` thresholds on worst-case robust accuracy, for CI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from robustbench_lite.errors import ThreatModelError
from robustbench_lite.results import AuditResult
from robustbench_lite.threat import Norm, parse_eps

#: Exit code of ``robust audit`` when a gate fails (1 is a usage or input error).
GATE_FAILED_EXIT_CODE = 3


@dataclass(frozen=True)
class Gate:
    """Worst-case robust accuracy must be at least ``threshold``; at one threat model
    (``norm``, ``eps``) or at every one (``norm`` None)."""

    threshold: float
    norm: str | None = None
    eps: float | None = None


def parse_threshold(text: str) -> float:
    """``0.6`` or ``60%`` → 0.6; must lie in [0, 1] (ValueError otherwise)."""
    percent = text.strip().endswith("%")
    try:
        value = float(text.strip()[:-1]) / 100 if percent else float(text)
    except ValueError:
        raise ValueError(f"threshold {text[:40]!r} is not a number; write an accuracy such "
                         "as 0.6 or 60%") from None
    if not 0 <= value <= 1:
        raise ValueError(f"threshold {text!r} must be between 0 and 1 (or 0% and 100%)")
    return value


def parse_gate_at(spec: str) -> Gate:
    """``linf:0.1=0.6`` (or ``=60%``) → a gate at one threat model."""
    threat, sep, threshold = spec.partition("=")
    norm, colon, eps = threat.partition(":")
    if not sep or not colon:
        raise ThreatModelError(f"gate {spec!r} must look like NORM:EPS=ACCURACY, e.g. "
                               "linf:8/255=0.5")
    try:
        value = parse_eps(eps)
        if value <= 0:
            raise ThreatModelError(f"eps must be greater than 0, got {eps.strip()}")
        return Gate(parse_threshold(threshold), Norm.parse(norm).value, value)
    except ValueError as exc:
        raise ThreatModelError(f"gate {spec!r}: {exc}") from exc


def evaluate_gates(result: AuditResult, gates: Sequence[Gate]) -> list[dict[str, object]]:
    """One entry per checked (gate, threat model): the accuracy and whether it passed. A gate
    naming a threat model that was not evaluated fails."""
    outcomes: list[dict[str, object]] = []
    for gate in gates:
        rows = [row for row in result.robust_accuracy
                if gate.norm is None or (row.norm == gate.norm and gate.eps is not None
                                         and math.isclose(row.eps, gate.eps, rel_tol=1e-9))]
        if not rows:
            outcomes.append({**asdict(gate), "accuracy": None, "passed": False,
                             "message": f"{gate.norm} eps={gate.eps:g} was not evaluated"})
        for row in rows:
            passed = row.accuracy >= gate.threshold
            outcomes.append({**asdict(gate), "norm": row.norm, "eps": row.eps,
                             "accuracy": row.accuracy, "passed": passed,
                             "message": f"worst-case robust accuracy {row.accuracy:.1%} at "
                                        f"{row.norm} eps={row.eps:g} "
                                        f"{'>=' if passed else 'is below'} "
                                        f"{gate.threshold:.1%}"})
    return outcomes
