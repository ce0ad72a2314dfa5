"""Dataset-aware default eps grids, by data family.

- ``digits`` (8x8, 16 grey levels): Linf 0.05, 0.1, 0.2; 0.1 is the standard budget (one
  and a half grey levels of the 17).
- ``mnist``: Linf 0.1, 0.2, 0.3 (0.3 is the standard MNIST budget, as in RobustBench).
- ``cifar10`` and ``generic`` natural images: Linf 2/255, 4/255, 8/255 (8/255 is RobustBench's
  CIFAR-10 standard).
"""

from __future__ import annotations

from robustbench_lite.threat import Norm, ThreatModel

DEFAULT_LINF_EPS: dict[str, tuple[float, ...]] = {
    "digits": (0.05, 0.1, 0.2),
    "mnist": (0.1, 0.2, 0.3),
    "cifar10": (2 / 255, 4 / 255, 8 / 255),
    "generic": (2 / 255, 4 / 255, 8 / 255),
}


def default_threats(family: str) -> list[ThreatModel]:
    """The default Linf threat models for a data family (``generic`` when unknown)."""
    grid = DEFAULT_LINF_EPS.get(family, DEFAULT_LINF_EPS["generic"])
    return [ThreatModel(Norm.LINF, eps) for eps in grid]
