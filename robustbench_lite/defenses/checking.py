"""Checks of defense parameters: each returns the value in its checked type or raises a
one-line `DefenseError` naming the defense, the parameter and what is allowed."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

from robustbench_lite.errors import DefenseError, ThreatModelError
from robustbench_lite.threat import Norm, parse_eps

#: The norms adversarial training supports.
TRAINING_NORMS = (Norm.LINF, Norm.L2)


def check_number(defense: str, name: str, value: object, valid: Callable[[float], bool],
                 allowed: str) -> float:
    """``value`` as a float if it is a finite number satisfying ``valid``, else a one-line
    `DefenseError` naming ``defense``, the parameter and the ``allowed`` range."""
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if not (math.isfinite(number) and valid(number)):
        raise DefenseError(f"`defense` {defense}: {name} must be {allowed}, got {value!r}")
    return number


def check_steps(defense: str, steps: object, name: str = "steps",
                high: int | None = None) -> int:
    """``steps`` (or another count called ``name``) as an integer >= 1 (and <= ``high``)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1 or \
            (high is not None and steps > high):
        limits = ">= 1" if high is None else f"from 1 to {high}"
        raise DefenseError(f"`defense` {defense}: {name} must be an integer {limits}, "
                           f"got {steps!r}")
    return steps


def check_norm(defense: str, norm: object) -> Norm:
    parsed: Norm | None = norm if isinstance(norm, Norm) else None
    if isinstance(norm, str) and parsed is None:
        try:
            parsed = Norm.parse(norm)
        except ThreatModelError:
            parsed = None
    if parsed not in TRAINING_NORMS:
        raise DefenseError(f"`defense` {defense}: norm must be 'linf' or 'l2', got {norm!r}")
    return parsed


def check_eps(defense: str, norm: Norm, eps: object) -> float:
    """``eps`` as a float: a number, or text such as ``8/255`` (`parse_eps`)."""
    if isinstance(eps, str):
        with contextlib.suppress(ThreatModelError):
            eps = parse_eps(eps)
    if norm is Norm.LINF:
        return check_number(defense, "eps", eps, lambda v: 0 < v <= 1,
                            "a number with 0 < eps <= 1 for linf")
    return check_number(defense, "eps", eps, lambda v: v > 0, "a number > 0")


def check_bool(defense: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise DefenseError(f"`defense` {defense}: {name} must be true or false, "
                           f"got {value!r}")
    return value
