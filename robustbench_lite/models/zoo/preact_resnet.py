"""CIFAR-style pre-activation ResNet-18.

He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks" (ECCV 2016).

Parameter and buffer names follow RobustBench's ``PreActResNet18``
(``robustbench/model_zoo/architectures/resnet.py`` in ``RobustBench/robustbench``: classes
``PreActBlock`` and ``PreActResNet``), so checkpoints of the RobustBench CIFAR-10 entries built
with it (``Wong2020Fast``, ``Andriushchenko2020Understanding``) load with ``strict=True``.
Checked against that source:

* stem ``conv1`` (3x3, 64 channels, no bias), no BatchNorm after it;
* ``layer1`` .. ``layer4``, each an ``nn.Sequential`` of two ``PreActBlock`` with keys
  ``bn1``, ``conv1`` (carries the stride), ``bn2``, ``conv2``, and ``shortcut.0`` (a 1x1 conv,
  no bias, no BatchNorm) only when the stride is not 1 or the width changes, so
  ``layer1.*`` has no shortcut and ``layer{2,3,4}.0.shortcut.0.weight`` exist;
* the shortcut is applied to the block's *raw* input (``PreActBlock``, not ``PreActBlockV2``);
* head ``linear``; the final ``bn`` exists only when ``bn_before_fc=True``, which
  ``PreActResNet18()`` does *not* set (RobustBench uses it for e.g. ``Rice2020OverfittingNetL2``
  and ``Kireev2021Effectiveness``, together with ``PreActBlockV2``).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["PreActBlock", "PreActResNet18"]


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus identity or 1x1 conv."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *,
                 shortcut_from_preact: bool = False) -> None:
        super().__init__()
        self.shortcut_from_preact = shortcut_from_preact
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = F.relu(self.bn1(x))
        if self.shortcut is None:
            shortcut: Tensor = x
        else:
            shortcut = self.shortcut(out if self.shortcut_from_preact else x)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 for 32x32 inputs (He et al. 2016), RobustBench key layout.

    ``bn_before_fc`` adds the final ``bn`` + ReLU before pooling (keys ``bn.*``);
    ``shortcut_from_preact`` feeds the projection shortcut the pre-activated input, as
    RobustBench's ``PreActBlockV2`` does. Both default to RobustBench's ``PreActResNet18()``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, *,
                 bn_before_fc: bool = False, shortcut_from_preact: bool = False) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"PreActResNet18 needs num_classes >= 1 and in_channels >= 1, got "
                             f"num_classes={num_classes}, in_channels={in_channels}")
        self.bn_before_fc = bn_before_fc
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        widths = (64, 128, 256, 512)
        in_planes = 64
        stages: list[nn.Sequential] = []
        for index, planes in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(
                PreActBlock(in_planes, planes, stride, shortcut_from_preact=shortcut_from_preact),
                PreActBlock(planes, planes, 1, shortcut_from_preact=shortcut_from_preact),
            ))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(512) if bn_before_fc else None
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.bn is not None:
            out = F.relu(self.bn(out))
        # Global average pooling: equals RobustBench's avg_pool2d(out, 4) on 32x32 inputs.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        logits: Tensor = self.linear(out)
        return logits
