"""Every registered attack, against the default model: its output is inside the threat model,
it is deterministic under a seed, the host's success flags are re-judged, and batches of
1 and 257 samples work. Every attack that serves targeted classification reaches its
targets; the generic attacks pursue a non-classification objective unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from small_models import ScoreAbove
from torch import nn

from robustbench_lite.attacks import APGDCE, FGSM, PGD, NoiseAttack, SquareAttack
from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.tasks.classification.objectives import (
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.threat import Norm, ThreatModel

#: Cheap settings so the contract runs quickly; the attacks' strength is tested elsewhere.
FAST: dict[str, dict[str, Any]] = {
    "pgd": {"steps": 3},
    "apgd-ce": {"steps": 4},
    "apgd-dlr": {"steps": 4},
    "apgd-t": {"steps": 4, "n_target_classes": 2},
    "square": {"n_queries": 30},
    "noise": {"samples": 2},
    "deepfool": {"steps": 3},
    "cw-l2": {"steps": 5, "binary_search_steps": 2},
    "autoattack": {"steps": 3, "n_target_classes": 2, "n_queries": 30},
}
#: Namespaced backends are exercised through one representative class each.
BACKEND_SPECS = {("art", Norm.LINF): "art:FastGradientMethod",
                 ("art", Norm.L2): "art:FastGradientMethod",
                 ("foolbox", Norm.LINF): "foolbox:FGSM",
                 ("foolbox", Norm.L2): "foolbox:FGM"}
EPS = {Norm.LINF: 0.1, Norm.L2: 1.0, Norm.L1: 4.0}


def _cases() -> list[Any]:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    cases = []
    for name in catalogue.attacks.names():
        attack_class = catalogue.attacks.get(name)
        params = FAST.get(name, {})
        native = name + (":" + ",".join(f"{k}={v}" for k, v in params.items())
                         if params else "")
        # semantic attacks need a generator of the data's images: the contract of advmix on
        # colour-digits is in test_semantic_attack.py
        for norm in sorted((n for n in attack_class.norms if n.is_lp), key=lambda n: n.value):
            spec = BACKEND_SPECS.get((name, norm)) if attack_class.namespace else native
            if spec is not None:
                cases.append(pytest.param(spec, norm, id=f"{name}-{norm.value}"))
    return cases


@pytest.fixture(scope="module")
def batch_257(digits_test: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
    return digits_test.x[:257], digits_test.y[:257]


@pytest.mark.parametrize(("spec", "norm"), _cases())
def test_attack_contract(spec: str, norm: Norm, default_model: RobustModel,
                         batch_257: tuple[torch.Tensor, torch.Tensor]) -> None:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    attack = build_attack(spec, catalogue)
    threat = ThreatModel(norm, EPS[norm])
    assert attack.supports(threat)
    assert attack.serves(Misclassification)
    x, y = batch_257
    for size in (1, 257):
        outcome = attack_batch(attack, default_model, x[:size], y[:size], threat, seed=5)
        assert outcome.problems == (), outcome.problems
        assert outcome.x_adv.shape == x[:size].shape and outcome.x_adv.dtype == x.dtype
        assert bool(threat.contains(outcome.x_adv, x[:size]).all())
        with torch.no_grad():
            predicted = default_model(outcome.x_adv).argmax(dim=1)
        assert torch.equal(outcome.outputs.argmax(dim=1), predicted)
        assert torch.equal(outcome.success, predicted != y[:size])
        assert torch.equal(outcome.correct, predicted == y[:size])
    again = attack_batch(attack, default_model, x[:257], y[:257], threat, seed=5)
    assert torch.equal(again.x_adv, outcome.x_adv)


# ---------------------------------------------------------------- targeted classification

#: Generous settings: the targeted test is about reaching targets, not about cost.
TARGETED: dict[str, dict[str, Any]] = {
    "pgd": {"steps": 10},
    "apgd-ce": {"steps": 10},
    "apgd-dlr": {"steps": 10},
    "apgd-t": {"steps": 10},
    "square": {"n_queries": 300},
    "cw-l2": {"steps": 50, "binary_search_steps": 3, "learning_rate": 0.1,
              "initial_const": 1.0},
    "autoattack": {"steps": 10, "n_queries": 50},
}
#: Foolbox's FGSM and FGM (the contract's representatives) reject targeted criteria; its
#: PGD stands for the backend here.
TARGETED_BACKEND_SPECS = {("art", Norm.LINF): "art:FastGradientMethod",
                          ("art", Norm.L2): "art:FastGradientMethod",
                          ("foolbox", Norm.LINF): "foolbox:LinfPGD",
                          ("foolbox", Norm.L2): "foolbox:L2PGD"}
#: The random-noise baseline serves targeted objectives but only draws random points: a
#: given one of 10 classes is reached by chance, whatever the budget, so it is not held to
#: reaching targets (it is held to the threat-model contract above).
NOT_AIMING = frozenset({"noise"})
TARGETED_EPS = {Norm.LINF: 0.3, Norm.L2: 2.0}


def _targeted_cases() -> list[Any]:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    cases = []
    for name in catalogue.attacks.names():
        if name in NOT_AIMING:
            continue
        attack_class = catalogue.attacks.get(name)
        params = TARGETED.get(name, {})
        native = name + (":" + ",".join(f"{k}={v}" for k, v in params.items())
                         if params else "")
        # Lp norms only: advmix (semantic) needs a generator of the data's images
        for norm in sorted((n for n in attack_class.norms if n in TARGETED_EPS),
                           key=lambda n: n.value):
            spec = TARGETED_BACKEND_SPECS.get((name, norm)) if attack_class.namespace \
                else native
            if spec is None:
                continue
            if not build_attack(spec, catalogue).serves(TargetedMisclassification):
                continue  # deepfool: untargeted only
            cases.append(pytest.param(spec, norm, id=f"{name}-{norm.value}"))
    return cases


def _easy_classifier() -> nn.Module:
    """A seeded linear classifier of 8x8 images into 10 classes, centred so that its clean
    predictions cover the classes."""
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 10)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(10, 64, generator=generator) * 0.5)
        layer.bias.copy_(-0.5 * layer.weight.sum(dim=1))
    return nn.Sequential(nn.Flatten(), layer).eval().requires_grad_(False)


def test_targeted_cases_cover_the_targeted_attacks() -> None:
    names = {case.id.rpartition("-")[0] for case in _targeted_cases()}
    assert {"fgsm", "fgm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "cw-l2",
            "autoattack", "art", "foolbox"} <= names
    assert "deepfool" not in names


@pytest.mark.parametrize(("spec", "norm"), _targeted_cases())
def test_targeted_attacks_reach_their_targets(spec: str, norm: Norm) -> None:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    attack = build_attack(spec, catalogue)
    model = _easy_classifier()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = model(x).argmax(dim=1)  # every sample starts correctly classified
    targets = (labels + 3) % 10  # a fixed wrong class per sample
    threat = ThreatModel(norm, TARGETED_EPS[norm], targeted=True)
    assert attack.supports(threat) and attack.serves(TargetedMisclassification)
    outcome = attack_batch(attack, model, x, labels, threat, seed=0, targets=targets)
    assert outcome.problems == (), outcome.problems
    assert bool(threat.contains(outcome.x_adv, x).all())
    reached = model(outcome.x_adv).argmax(dim=1) == targets
    assert torch.equal(outcome.success, reached)
    assert float(reached.float().mean()) >= 0.9, f"{spec}: {float(reached.float().mean()):.0%}"


# ---------------------------------------------------------------- a non-classification goal


def _scorer() -> nn.Module:
    """A seeded linear scorer of 8x8 images whose clean scores are all below 0."""
    generator = torch.Generator().manual_seed(2)
    layer = nn.Linear(64, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(1, 64, generator=generator) * 0.2)
        layer.bias.fill_(-2.0 - 0.5 * float(layer.weight.sum()))
    return nn.Sequential(nn.Flatten(), layer).eval().requires_grad_(False)


@pytest.mark.parametrize("attack", [FGSM(), PGD(steps=10), APGDCE(steps=10),
                                    SquareAttack(n_queries=100), NoiseAttack(samples=5)],
                         ids=lambda attack: attack.name)
def test_generic_attacks_pursue_any_objective(attack: Attack) -> None:
    scorer = _scorer()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    goal = ScoreAbove(torch.arange(len(x)))
    with torch.no_grad():
        assert not bool(goal.success(scorer(x)).any())
    threat = ThreatModel(Norm.LINF, 0.3)
    assert attack.requires == frozenset() and attack.serves(ScoreAbove)
    x_adv = attack.run(scorer, x, goal, threat, torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert bool(threat.contains(x_adv, x).all())
    with torch.no_grad():
        reached = goal.success(scorer(x_adv))
        moved = scorer(x_adv)[:, 0] - scorer(x)[:, 0]
    if isinstance(attack, PGD):
        assert float(reached.float().mean()) >= 0.9
    if not isinstance(attack, NoiseAttack):
        assert float(moved.mean()) > 0  # they all ascend the score


def test_class_attacks_do_not_serve_a_score_objective() -> None:
    catalogue = catalogue_for(get_plugin_manager(load_entrypoints=False))
    for spec in ("apgd-dlr", "apgd-t", "deepfool", "cw-l2", "autoattack",
                 "art:FastGradientMethod", "foolbox:LinfPGD"):
        attack = build_attack(spec, catalogue)
        assert not attack.serves(ScoreAbove), spec
        assert "score-above" in attack.unserved_reason(ScoreAbove), spec
