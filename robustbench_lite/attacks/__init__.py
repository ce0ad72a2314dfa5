"""Attacks: the `Attack` interface and the native implementations."""

from robustbench_lite.attacks.apgd import APGDCE, APGDDLR, APGDT
from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn, MinimumNormAttack
from robustbench_lite.attacks.carlini_wagner import CarliniWagnerL2
from robustbench_lite.attacks.deepfool import DeepFool
from robustbench_lite.attacks.ensemble import AutoAttack, WorstCaseEnsemble
from robustbench_lite.attacks.fgsm import FGM, FGSM
from robustbench_lite.attacks.noise import NoiseAttack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.attacks.square import SquareAttack

__all__ = [
    "APGDCE", "APGDDLR", "APGDT", "FGM", "FGSM", "PGD", "Attack", "AttackKind", "AutoAttack",
    "CarliniWagnerL2", "DeepFool", "LogitsFn", "MinimumNormAttack", "NoiseAttack",
    "SquareAttack", "WorstCaseEnsemble",
]
