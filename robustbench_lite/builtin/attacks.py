"""Built-in attacks, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.attacks.apgd import APGDCE, APGDDLR, APGDT
from robustbench_lite.attacks.backends import ArtAttack, FoolboxAttack
from robustbench_lite.attacks.carlini_wagner import CarliniWagnerL2
from robustbench_lite.attacks.deepfool import DeepFool
from robustbench_lite.attacks.ensemble import AutoAttack
from robustbench_lite.attacks.fgsm import FGM, FGSM
from robustbench_lite.attacks.noise import NoiseAttack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.attacks.square import SquareAttack
from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.semantic.attack import AdvMixAttack


@hookimpl
def register_attacks(register: Callable[[Any], None]) -> None:
    register(FGSM)
    register(FGM)
    register(PGD)
    register(APGDCE)
    register(APGDDLR)
    register(APGDT)
    register(SquareAttack)
    register(NoiseAttack)
    register(DeepFool)
    register(CarliniWagnerL2)
    register(AutoAttack)
    register(ArtAttack)
    register(FoolboxAttack)
    register(AdvMixAttack)
