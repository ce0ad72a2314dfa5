"""Worst-case composition of attacks: each component attacks only what the previous ones
left robust, and the first adversarial example found for a sample is kept (as in
AutoAttack, Croce & Hein, ICML 2020, and torchattacks' MultiAttack)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.errors import AttackError
from robustbench_lite.threat import Norm, ThreatModel


class WorstCaseEnsemble(Attack):
    """Run ``attacks`` in order, each only on samples no earlier one broke.

    Per sample the result is the first component's example that fools the model, else the
    last component's output: the per-sample worst case over the components. Cost: the sum of
    the components' costs on the shrinking set of robust samples, plus one forward pass per
    component but the last to check which samples it broke.
    """

    name = "ensemble"
    norms = frozenset(Norm)
    kind = AttackKind.GRADIENT
    supports_targeted = True

    def __init__(self, attacks: Sequence[Attack]) -> None:
        if not attacks:
            raise AttackError("an ensemble needs at least one attack")
        self.attacks = list(attacks)
        self._set_params(attacks=[repr(a) for a in self.attacks])

    def supports(self, threat: ThreatModel) -> bool:
        return all(attack.supports(threat) for attack in self.attacks)

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        result = x.clone()
        remaining = torch.arange(len(x), device=x.device)
        for index, attack in enumerate(self.attacks):
            x_adv = attack.run(model, x[remaining], y[remaining], threat, generator)
            x_adv = threat.project(x_adv.detach(), x[remaining])
            result[remaining] = x_adv
            if index == len(self.attacks) - 1:
                break
            with torch.no_grad():
                predicted = model(x_adv).argmax(dim=1)
            target = y[remaining]
            broken = predicted == target if threat.targeted else predicted != target
            remaining = remaining[~broken]
            if len(remaining) == 0:
                break
        return result
