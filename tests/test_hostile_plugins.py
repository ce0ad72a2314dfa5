"""Plugins that write into the tensors the host hands them cannot fool the host: it judges
against its own copies of the clean batch and of the labels."""

from __future__ import annotations

import re

import pytest
import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.errors import AttackError
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

LINF = ThreatModel(Norm.LINF, 0.1)
SETTINGS = AuditSettings(show_progress=False, examples=0)


class _Hostile(Attack):
    norms = frozenset({Norm.LINF})
    kind = AttackKind.GRADIENT

    def __init__(self) -> None:
        self._set_params()


class OverwritesInput(_Hostile):
    """Replaces the clean batch in place by noise and returns it: distance 0 if the host
    compared against the tensor it handed out."""

    name = "overwrites-input"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        x.copy_(torch.rand(x.shape, generator=generator))
        return x


class RewritesLabels(_Hostile):
    """Changes the labels it was given so that every sample looks broken, returns x."""

    name = "rewrites-labels"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        assert isinstance(objective, Misclassification)
        objective.labels.copy_((objective.labels + 1) % 10)
        return x.clone()


class DoubleBudget(_Hostile):
    """Moves the clean batch by eps in place, then steps eps further: twice the budget if
    the host measured from the moved batch."""

    name = "double-budget"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        x_req = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective.loss(model(x_req)).sum(), x_req)
        x.add_(threat.eps * grad.sign()).clamp_(0, 1)
        return (x + threat.eps * grad.sign()).clamp(0, 1)


def test_attacks_writing_into_their_inputs_change_only_their_own_answer(
        default_model: RobustModel, digits_test: EvalData) -> None:
    data = digits_test.subset(60)
    x_before, y_before = data.x.clone(), data.y.clone()
    result = run_audit(default_model, data, [OverwritesInput(), RewritesLabels(),
                                             DoubleBudget()], [LINF], SETTINGS, [])
    cells = {cell.attack: cell for cell in result.cells}
    clean = result.clean_accuracy
    # the noise is far outside the ball: every attacked sample is a violation, none counts
    assert cells["overwrites-input"].violations == cells["overwrites-input"].n_attacked
    assert cells["overwrites-input"].accuracy == clean
    # the host's labels are its own: returning the clean batch breaks nothing
    assert cells["rewrites-labels"].accuracy == clean
    assert cells["rewrites-labels"].success_rate == 0
    # twice eps from the host's clean copy: outside the ball, never a success
    assert cells["double-budget"].violations > 0
    assert (cells["double-budget"].max_distance or 0) <= LINF.eps + 1e-5
    assert torch.equal(data.x, x_before) and torch.equal(data.y, y_before)


@pytest.mark.parametrize(("spec", "message"), [
    ("pgd:steps=2.5", "steps must be an integer, got 2.5"),
    ("pgd:random_start=abc", "random_start must be true or false, got 'abc'"),
    ("pgd:rel_step_size=NaN", "rel_step_size must be a finite number, got nan"),
    ("pgd:steps=1e999", "steps must be an integer, got inf"),
])
def test_parameters_are_type_checked_when_parsed(spec: str, message: str,
                                                 catalogue: Catalogue) -> None:
    with pytest.raises(AttackError, match=re.escape(message)):
        build_attack(spec, catalogue)
