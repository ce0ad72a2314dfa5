"""Random noise: the baseline every real attack must beat.

Not an attack from the literature but a sanity check: random perturbations of the full
budget, tried ``samples`` times per input. A model that random noise breaks is not robust;
an attack that breaks fewer samples than this baseline is broken itself (or badly tuned).
Cost: at most ``samples`` forward passes per sample, no backward pass.
"""

from __future__ import annotations

import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

DISTRIBUTIONS = ("uniform", "gaussian")


class NoiseAttack(Attack):
    """Random-noise baseline (Linf, L2). A real attack must do at least as well.

    Args:
        distribution: ``"uniform"`` (default) or ``"gaussian"``.

            * Linf, uniform: every pixel uniform in ``[-eps, eps]``.
            * Linf, gaussian: every pixel Gaussian with standard deviation ``eps / 2``,
              clipped to ``[-eps, eps]``.
            * L2, uniform: uniform in the eps-ball (a random direction with radius
              ``eps * U^(1/d)``, ``d`` the number of pixels).
            * L2, gaussian: a Gaussian direction scaled to norm eps (uniform on the sphere).

            Every draw is then clipped to the pixel box.
        samples: random perturbations tried per input (default 10). Each input keeps the
            first draw that reaches the objective (`Objective.success`: for classification,
            misclassified or, targeted, the target class), else the last one; inputs that
            reached it are not queried again.

    Cost: at most ``samples`` forward passes per sample.
    """

    name = "noise"
    norms = frozenset({Norm.LINF, Norm.L2})
    kind = AttackKind.BASELINE

    def __init__(self, *, distribution: str = "uniform", samples: int = 10) -> None:
        if distribution not in DISTRIBUTIONS:
            raise AttackError(f"noise distribution {distribution!r} is unknown; choose one "
                              f"of: {', '.join(DISTRIBUTIONS)}")
        if samples < 1:
            raise AttackError(f"noise needs samples >= 1, got {samples}")
        self.distribution = distribution
        self.samples = samples
        self._set_params(distribution=distribution, samples=samples)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        if threat.norm not in self.norms:
            raise AttackError(f"noise supports linf and l2, not {threat.norm.value}")
        best = x.clone()
        if threat.eps == 0 or len(x) == 0:
            return best
        remaining = torch.arange(len(x), device=x.device)
        with torch.no_grad():
            for _ in range(self.samples):
                clean = x[remaining]
                candidate = threat.project(clean + self._draw(clean, threat, generator), clean)
                fooled = objective.select(remaining).success(model(candidate))
                best[remaining] = candidate
                remaining = remaining[~fooled]
                if len(remaining) == 0:
                    break
        return best

    def _draw(self, x: torch.Tensor, threat: ThreatModel,
              generator: torch.Generator) -> torch.Tensor:
        eps = threat.eps
        if threat.norm is Norm.LINF:
            if self.distribution == "uniform":
                uniform = torch.rand(x.shape, generator=generator, device=x.device,
                                     dtype=x.dtype)
                return (2 * uniform - 1) * eps
            gaussian = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return (gaussian * (eps / 2)).clamp(-eps, eps)
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        norms: torch.Tensor = torch.linalg.vector_norm(direction.flatten(1), dim=1)
        norms = norms.clamp_min(1e-12)
        radius = torch.full((len(x),), eps, device=x.device, dtype=x.dtype)
        if self.distribution == "uniform":
            uniform = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)
            radius = radius * uniform.pow(1.0 / max(x[0].numel(), 1))
        return direction * (radius / norms).view(-1, *([1] * (x.dim() - 1)))
