"""Worst-case composition of attacks: each component attacks only what the previous ones
left robust, and the first adversarial example found for a sample is kept (as in
AutoAttack, Croce & Hein, ICML 2020, and torchattacks' MultiAttack)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from robustbench_lite.attacks.apgd import APGDCE, APGDT
from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.attacks.square import SquareAttack
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel


class WorstCaseEnsemble(Attack):
    """Run ``attacks`` in order, each only on samples no earlier one broke.

    Per sample the result is the first component's example that reaches the objective, else
    the last component's output: the per-sample worst case over the components. It serves an
    objective when every component does. Cost: the sum of the components' costs on the
    shrinking set of robust samples, plus one forward pass per component but the last to
    check which samples it broke.
    """

    name = "ensemble"
    norms = frozenset(Norm)
    kind = AttackKind.GRADIENT

    def __init__(self, attacks: Sequence[Attack]) -> None:
        if not attacks:
            raise AttackError("an ensemble needs at least one attack")
        self.attacks = list(attacks)
        self._set_params(attacks=[repr(a) for a in self.attacks])

    def supports(self, threat: ThreatModel) -> bool:
        return all(attack.supports(threat) for attack in self.attacks)

    def serves(self, objective: type[Objective]) -> bool:
        return all(attack.serves(objective) for attack in self.attacks)

    def unserved_reason(self, objective: type[Objective]) -> str:
        for attack in self.attacks:
            if not attack.serves(objective):
                return f"{self.name}: {attack.unserved_reason(objective)}"
        return super().unserved_reason(objective)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        result = x.clone()
        remaining = torch.arange(len(x), device=x.device)
        for index, attack in enumerate(self.attacks):
            goal = objective.select(remaining)
            x_adv = attack.run(model, x[remaining], goal, threat, generator)
            x_adv = threat.project(x_adv.detach(), x[remaining])
            result[remaining] = x_adv
            if index == len(self.attacks) - 1:
                break
            with torch.no_grad():
                broken = goal.success(model(x_adv))
            remaining = remaining[~broken]
            if len(remaining) == 0:
                break
        return result


class AutoAttack(WorstCaseEnsemble):
    """The AutoAttack standard composition (Croce & Hein, ICML 2020), without FAB-T:
    APGD-CE, then APGD-T, then Square, each only on the samples still robust.

    Linf and L2; serves the objectives all three serve (classification, untargeted or
    targeted: on a targeted objective APGD-T runs one round, toward the target). Args:
    ``steps`` per APGD run (default 100), ``n_target_classes`` for APGD-T (default 9),
    ``n_queries`` for Square (default 5000).
    Cost: up to ``steps * (1 + n_target_classes)`` forward and backward passes and
    ``n_queries`` forward passes per sample, far fewer on samples broken early.
    """

    name = "autoattack"
    norms = frozenset({Norm.LINF, Norm.L2})
    requires = APGDCE.requires | APGDT.requires | SquareAttack.requires

    def __init__(self, *, steps: int = 100, n_target_classes: int = 9,
                 n_queries: int = 5000) -> None:
        super().__init__([APGDCE(steps=steps), APGDT(steps=steps,
                                                     n_target_classes=n_target_classes),
                          SquareAttack(n_queries=n_queries)])
        self._set_params(steps=steps, n_target_classes=n_target_classes, n_queries=n_queries)

    def supports(self, threat: ThreatModel) -> bool:
        return threat.norm in self.norms
