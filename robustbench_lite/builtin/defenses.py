"""Built-in defenses, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustbench_lite.defenses.adversarial import ADVERSARIAL_DEFENSES
from robustbench_lite.defenses.denoiser import Denoiser
from robustbench_lite.defenses.distillation import DefensiveDistillation
from robustbench_lite.defenses.ensemble import EnsembleAT
from robustbench_lite.defenses.gaussian import GaussianAugmentation
from robustbench_lite.defenses.input_transform import InputTransform
from robustbench_lite.defenses.smoothing import LabelSmoothing
from robustbench_lite.defenses.spectral import SpectralNormalization
from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.semantic.defenses import AdvMix, RandMix


@hookimpl
def register_defenses(register: Callable[[Any], None]) -> None:
    for defense in ADVERSARIAL_DEFENSES:
        register(defense)
    register(EnsembleAT)
    register(GaussianAugmentation)
    register(LabelSmoothing)
    register(SpectralNormalization)
    register(RandMix)
    register(AdvMix)
    register(InputTransform)
    register(DefensiveDistillation)
    register(Denoiser)

