"""Built-in architectures, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustbench_lite.hookspecs import hookimpl
from robustbench_lite.models.architecture import Architecture
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.models.zoo.preact_resnet import PreActResNet18
from robustbench_lite.models.zoo.wide_resnet import WideResNet

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

#: The default model: `DigitsCNN` trained by ``robust train digits-cnn`` on ``digits``.
DIGITS_CNN = Architecture(
    name="digits-cnn",
    build=DigitsCNN,
    input_shape=(1, 8, 8),
    description="small CNN for 8x8 digits; bundled weights trained on `digits`",
    defaults={"num_classes": 10},
    weights=WEIGHTS_DIR / "digits_cnn.safetensors",
    dataset="digits",
)

PREACT_RESNET18 = Architecture(
    name="preact-resnet18",
    build=PreActResNet18,
    input_shape=(3, 32, 32),
    description="CIFAR PreAct ResNet-18 (He et al. 2016), RobustBench key layout",
    defaults={"num_classes": 10},
)

WRN_28_10 = Architecture(
    name="wrn-28-10",
    build=WideResNet,
    input_shape=(3, 32, 32),
    description="WideResNet-28-10 (Zagoruyko & Komodakis 2016), RobustBench key layout",
    defaults={"depth": 28, "widen_factor": 10, "num_classes": 10},
)


@hookimpl
def register_architectures(register: Callable[[Any], None]) -> None:
    register(DIGITS_CNN)
    register(PREACT_RESNET18)
    register(WRN_28_10)
