"""The GAN audit's threat matrices: attacks and eps per kind of view.

Latent eps are in prior standard deviations (family `LATENT_FAMILY`: Linf 0.25, L2 1.0
standard); pixel eps follow the real data's family (digits: Linf 0.1, L2 1.0). Each grid
is the standard eps times the preset's multipliers, as for classifiers
(`robustbench_lite.matrix.presets`).
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_lite.errors import GanError
from robustbench_lite.matrix.presets import (
    LATENT_FAMILY,
    QUICK_GRID,
    STANDARD_GRID,
    standard_eps,
)
from robustbench_lite.threat import Norm


@dataclass(frozen=True)
class GanMatrix:
    """A named GAN threat matrix. ``samples``: latents drawn (and real images used) per
    view unless the audit says otherwise."""

    name: str
    version: str
    latent_attacks: tuple[str, ...]
    pixel_attacks: tuple[str, ...]
    norms: tuple[Norm, ...]
    multipliers: tuple[float, ...]
    samples: int

    def latent_eps(self) -> dict[Norm, tuple[float, ...]]:
        standard = standard_eps(LATENT_FAMILY)
        return {norm: tuple(standard[norm] * m for m in self.multipliers) for norm in self.norms}

    def pixel_eps(self, family: str) -> dict[Norm, tuple[float, ...]]:
        standard = standard_eps(family)
        return {norm: tuple(standard[norm] * m for m in self.multipliers) for norm in self.norms}


GAN_MATRICES = {
    "quick": GanMatrix("quick", "1", ("fgsm", "pgd"), ("fgsm", "pgd"), (Norm.LINF,),
                       QUICK_GRID, 200),
    "standard": GanMatrix("standard", "1", ("fgsm", "pgd:steps=50,restarts=2", "apgd-ce"),
                          ("fgsm", "pgd:steps=50,restarts=2", "apgd-ce",
                           "square:n_queries=1000"),
                          (Norm.LINF, Norm.L2), STANDARD_GRID, 300),
}


def gan_matrix(name: str) -> GanMatrix:
    """The GAN matrix ``name``; `GanError` naming the choices otherwise."""
    if name not in GAN_MATRICES:
        raise GanError(f"no GAN threat matrix {name!r}; choose one of "
                       f"{', '.join(GAN_MATRICES)}")
    return GAN_MATRICES[name]
