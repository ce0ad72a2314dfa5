"""Attacks: the `Attack` interface and the native implementations."""

from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.attacks.fgsm import FGM, FGSM
from robustbench_lite.attacks.pgd import PGD

__all__ = ["FGM", "FGSM", "PGD", "Attack", "AttackKind", "LogitsFn"]
