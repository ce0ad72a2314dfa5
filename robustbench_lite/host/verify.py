"""The host's check of every adversarial batch a plugin returns. Nothing is trusted."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.threat import CONTAINS_TOLERANCE, ThreatModel


@dataclass(frozen=True)
class Verification:
    """``valid`` marks samples whose adversarial example may be counted; ``problems`` says
    what was wrong with the others."""

    valid: torch.Tensor
    problems: tuple[str, ...]


def verify_batch(x: torch.Tensor, x_adv: object, threat: ThreatModel,
                 tolerance: float = CONTAINS_TOLERANCE) -> Verification:
    """Check type, shape, dtype, finiteness, pixel bounds and the eps-ball, per sample."""
    none_valid = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    if not isinstance(x_adv, torch.Tensor):
        return Verification(none_valid, (f"returned {type(x_adv).__name__}, not a tensor",))
    if x_adv.shape != x.shape:
        return Verification(none_valid, (f"returned shape {tuple(x_adv.shape)} for input "
                                          f"shape {tuple(x.shape)}",))
    if x_adv.dtype != x.dtype:
        return Verification(none_valid, (f"returned dtype {x_adv.dtype}, expected {x.dtype}",))
    x_adv = x_adv.detach().to(x.device)
    finite = torch.isfinite(x_adv.flatten(1)).all(dim=1)
    inside = threat.contains(torch.where(finite.view(-1, *[1] * (x.dim() - 1)), x_adv, x), x,
                             tolerance)
    valid = finite & inside
    problems = []
    if not bool(finite.all()):
        problems.append(f"{int((~finite).sum())} sample(s) not finite")
    if not bool(inside.all()):
        worst = float(threat.distances(x_adv[finite & ~inside], x[finite & ~inside]).max()) \
            if bool((finite & ~inside).any()) else float("nan")
        problems.append(f"{int((finite & ~inside).sum())} sample(s) outside {threat.label} "
                        f"or the pixel bounds (largest {threat.norm.value} distance "
                        f"{worst:.4g})")
    return Verification(valid, tuple(problems))
