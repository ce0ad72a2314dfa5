"""Plugins that misbehave cannot fool the host: it judges against its own copies of the
clean batch and of the labels, restores a model or torch setting a plugin changed (failing
that cell, never storing it), and stops an attack that runs past its time limit."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.errors import AttackError
from robustbench_lite.host.attack import QueryCounter
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.reports.outputs import write_outputs
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


# --- plugins that change the model or torch's global state -----------------------------

def _module_of(model: ModelFn) -> torch.nn.Module:
    """What a hostile plugin reaches through the query counter it was handed."""
    assert isinstance(model, QueryCounter)
    robust = model.model
    assert isinstance(robust, RobustModel)
    return robust.module


class ZeroesWeights(_Hostile):
    name = "zeroes-weights"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            for parameter in _module_of(model).parameters():
                parameter.zero_()
        return x.clone()


class SwitchesToTraining(_Hostile):
    name = "switches-to-training"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        _module_of(model).train()
        return x.clone()


class DisablesGradients(_Hostile):
    name = "disables-gradients"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        torch.set_grad_enabled(False)
        return x.clone()


class AddsHook(_Hostile):
    name = "adds-hook"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        _module_of(model).register_forward_hook(lambda module, args, out: -out)
        return x.clone()


class Hangs(_Hostile):
    """Loops forever and swallows every ordinary exception."""

    name = "hangs"

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        while True:
            with contextlib.suppress(Exception):  # must not stop the host's time limit
                time.sleep(0.01)


def _with_dropout(model: RobustModel) -> RobustModel:
    module = torch.nn.Sequential(copy.deepcopy(model.module), torch.nn.Dropout(0.5))
    return RobustModel(module, model.input_shape, model.num_classes, "with-dropout",
                       model.sha256, model.load_info)


@pytest.mark.parametrize("hostile", [ZeroesWeights, SwitchesToTraining, DisablesGradients,
                                     AddsHook])
def test_an_attack_that_changes_the_model_fails_its_cell_and_is_not_stored(
        hostile: type[_Hostile], default_model: RobustModel, digits_test: EvalData,
        catalogue: Catalogue, tmp_path: Path) -> None:
    model = _with_dropout(default_model)
    data = digits_test.subset(40)
    pgd = build_attack("pgd:steps=5", catalogue)
    alone = run_audit(model, data, [pgd], [LINF], SETTINGS, [])
    store = ResultStore(tmp_path / "results.sqlite")
    try:
        attacked = run_audit(model, data, [hostile(), pgd], [LINF], SETTINGS, [],
                             store=store)
        cells = {cell.attack: cell for cell in attacked.cells}
        bad = cells[hostile.name]
        assert bad.accuracy is None and bad.error is not None
        assert "changed the model or torch's settings" in bad.error
        # the model was restored: the attack after it sees the model the audit started with
        assert cells["pgd"].accuracy == alone.cells[0].accuracy
        assert attacked.clean_accuracy == alone.clean_accuracy
        assert torch.is_grad_enabled() and not model.module.training
        # only pgd's cell was stored; a rerun computes the hostile cell again
        assert len(store) == 1
    finally:
        store.close()


def test_a_hung_attack_fails_at_the_time_limit_and_is_not_stored(
        default_model: RobustModel, digits_test: EvalData, catalogue: Catalogue,
        tmp_path: Path) -> None:
    settings = dataclasses.replace(SETTINGS, cell_time_limit=0.5)
    store = ResultStore(tmp_path / "results.sqlite")
    try:
        started = time.perf_counter()
        result = run_audit(default_model, digits_test.subset(20),
                           [Hangs(), build_attack("fgsm", catalogue)], [LINF], settings, [],
                           store=store)
        assert time.perf_counter() - started < 30
        cells = {cell.attack: cell for cell in result.cells}
        assert cells["hangs"].accuracy is None
        assert "time limit of 0.5 s" in (cells["hangs"].error or "")
        assert cells["fgsm"].accuracy is not None
        assert len(store) == 1
    finally:
        store.close()


# --- a model that returns NaN on perturbed input ----------------------------------------

class NaNOffTheGrid(torch.nn.Module):
    """The wrapped model on digits (pixel values k/16), NaN logits on any other input: a
    model that breaks down exactly where an attack moves it."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.inner(x)
        off_grid = ((x * 16 - (x * 16).round()).abs() > 1e-4).flatten(1).any(dim=1)
        return torch.where(off_grid[:, None], torch.full_like(logits, float("nan")), logits)


def test_nan_outputs_on_adversarial_input_count_as_broken_and_are_written(
        default_model: RobustModel, digits_test: EvalData, catalogue: Catalogue,
        tmp_path: Path) -> None:
    model = RobustModel(NaNOffTheGrid(copy.deepcopy(default_model.module)),
                        default_model.input_shape, 10, "nan-off-grid", default_model.sha256,
                        default_model.load_info)
    data = digits_test.subset(30)
    targeted = ThreatModel(Norm.LINF, 0.1, targeted=True, targets="next-likely")
    result = run_audit(model, data, [build_attack("fgsm", catalogue)], [LINF, targeted],
                       SETTINGS, [])
    untargeted_cell, targeted_cell = result.cells
    assert result.clean_accuracy > 0.9
    # NaN predicts nothing: never correct (pessimistic), never the target
    assert untargeted_cell.accuracy == 0 and untargeted_cell.success_rate == 1
    assert targeted_cell.accuracy == 0 and targeted_cell.success_rate == 0
    paths = write_outputs(result, tmp_path)
    assert json.loads(paths["results"].read_text())["cells"][0]["accuracy"] == 0
