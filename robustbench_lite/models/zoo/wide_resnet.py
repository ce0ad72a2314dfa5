"""Wide residual network (WRN-depth-k) for CIFAR.

Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016).

Parameter and buffer names follow RobustBench's ``WideResNet``
(``robustbench/model_zoo/architectures/wide_resnet.py`` in ``RobustBench/robustbench``, itself
based on the TRADES code), as built by the CIFAR-10 Linf ``Standard`` entry
``WideResNet(depth=28, widen_factor=10)`` in ``robustbench/model_zoo/cifar10.py``, i.e. with
``sub_block1=False`` and ``bias_last=True``. Checked against that source:

* stem ``conv1`` (3x3, 16 channels, no bias);
* ``block1`` .. ``block3``, each a ``NetworkBlock`` whose ``layer`` is an ``nn.Sequential`` of
  ``(depth - 4) / 6`` ``BasicBlock`` with ``bn1``, ``relu1``, ``conv1`` (carries the stride),
  ``bn2``, ``relu2``, ``conv2`` and, only where input and output widths differ (the first
  block of each group, since ``16 != 16 * widen_factor``), ``convShortcut`` (1x1, no bias);
* head ``bn1``, ``relu``, ``fc`` (with bias); the ReLUs hold no parameters.

The ``sub_block1`` variant (extra ``sub_block1.*`` keys, unused in ``forward``) is not
reproduced.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["WideBasicBlock", "WideNetworkBlock", "WideResNet"]


class WideBasicBlock(nn.Module):
    """Pre-activation wide basic block (RobustBench/TRADES ``BasicBlock`` layout)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1,
                               bias=False)
        self.dropout = dropout
        self.equal_in_out = in_planes == out_planes
        self.convShortcut: nn.Conv2d | None = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride,
                                          padding=0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre: Tensor = self.relu1(self.bn1(x))
        out: Tensor = self.relu2(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        # As in RobustBench: the projection shortcut sees the pre-activated input, the
        # identity shortcut the raw input.
        shortcut: Tensor = x if self.convShortcut is None else self.convShortcut(pre)
        return shortcut + out


class WideNetworkBlock(nn.Module):
    """A group of ``num_layers`` wide blocks; the first one carries the stride."""

    def __init__(self, num_layers: int, in_planes: int, out_planes: int, stride: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes,
                           stride if i == 0 else 1, dropout)
            for i in range(num_layers)
        ))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.layer(x)
        return out


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` for 32x32 inputs (Zagoruyko & Komodakis 2016).

    Defaults give WRN-28-10 with RobustBench's key layout.
    """

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10,
                 in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, "
                             f"34, 40, ...), got depth={depth}")
        if widen_factor < 1:
            raise ValueError(f"WideResNet widen_factor must be >= 1, got {widen_factor}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"WideResNet needs num_classes >= 1 and in_channels >= 1, got "
                             f"num_classes={num_classes}, in_channels={in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"WideResNet dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1,
                               bias=False)
        self.block1 = WideNetworkBlock(n, widths[0], widths[1], 1, dropout)
        self.block2 = WideNetworkBlock(n, widths[1], widths[2], 2, dropout)
        self.block3 = WideNetworkBlock(n, widths[2], widths[3], 2, dropout)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He-normal (fan-out) convolutions, unit BatchNorm, zero linear bias, as in the
        # reference code.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        # Global average pooling: equals RobustBench's avg_pool2d(out, 8) on 32x32 inputs.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        logits: Tensor = self.fc(out)
        return logits
