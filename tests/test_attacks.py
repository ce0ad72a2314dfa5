"""The native attacks on the default model: correctness, determinism, monotonicity."""

from __future__ import annotations

import pytest
import torch

from robustbench_lite.attacks import FGM, FGSM, PGD
from robustbench_lite.attacks.spec import build_attack, parse_attack_spec
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import AttackError, UnknownAttackError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.objectives import (
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.threat import Norm, ThreatModel

Batch = tuple[torch.Tensor, torch.Tensor]


@pytest.mark.parametrize("attack", [FGSM(), PGD(steps=5)], ids=repr)
def test_attack_output_inside_threat_model(attack: FGSM | PGD, default_model: RobustModel,
                                           tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.1)
    x_adv = attack.run(default_model, x, Misclassification(y), threat,
                       torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert bool(threat.contains(x_adv, x).all())


def test_pgd_l2_inside_ball(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.L2, 1.0)
    x_adv = PGD(steps=5).run(default_model, x, Misclassification(y), threat,
                             torch.Generator().manual_seed(0))
    assert bool(threat.contains(x_adv, x).all())
    assert (default_model.predict(x_adv) != y).any()


def test_pgd_is_at_least_as_strong_as_fgsm(default_model: RobustModel,
                                           tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.1)
    fooled = {}
    for attack in (FGSM(), PGD(steps=20)):
        outcome = attack_batch(attack, default_model, x, y, threat, seed=1)
        fooled[attack.name] = int(outcome.success.sum())
    assert fooled["pgd"] >= fooled["fgsm"] > 0


def test_same_seed_same_batch(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.1)
    first = attack_batch(PGD(steps=3), default_model, x, y, threat, seed=7).x_adv
    again = attack_batch(PGD(steps=3), default_model, x, y, threat, seed=7).x_adv
    other = attack_batch(PGD(steps=3), default_model, x, y, threat, seed=8).x_adv
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_zero_eps_leaves_images_unchanged(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    outcome = attack_batch(PGD(steps=3), default_model, x, y, ThreatModel(Norm.LINF, 0.0), 0)
    assert torch.equal(outcome.x_adv, x)
    assert bool(outcome.correct.all())


def test_huge_eps_breaks_everything(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    outcome = attack_batch(PGD(steps=20), default_model, x, y, ThreatModel(Norm.LINF, 1.0), 0)
    assert not bool(outcome.correct.any())


def test_targeted_pgd_reaches_target(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    target = (y + 1) % 10
    threat = ThreatModel(Norm.LINF, 0.3, targeted=True)
    outcome = attack_batch(PGD(steps=30), default_model, x, y, threat, seed=0, targets=target)
    assert float((outcome.outputs.argmax(dim=1) == target).float().mean()) > 0.8
    assert torch.equal(outcome.success, outcome.outputs.argmax(dim=1) == target)


def test_gradient_attacks_serve_both_classification_objectives() -> None:
    for attack in (FGSM(), FGM(), PGD()):
        assert attack.requires == frozenset()
        assert attack.serves(Misclassification)
        assert attack.serves(TargetedMisclassification)


def test_queries_are_counted(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.1)
    fixed = attack_batch(PGD(steps=4, early_stop=False), default_model, x, y, threat, 0)
    assert fixed.queries == 4 * len(x)  # exactly one forward per step and sample
    early = attack_batch(PGD(steps=4), default_model, x, y, threat, 0)
    assert len(x) < early.queries < 4 * len(x)  # broken samples leave the batch


@pytest.mark.parametrize("norm", [norm for norm in Norm if norm.is_lp])
def test_early_stop_keeps_the_same_robust_accuracy(norm: Norm, default_model: RobustModel,
                                                   digits_test: EvalData) -> None:
    x, y = digits_test.x[:200], digits_test.y[:200]
    eps = {Norm.LINF: 0.1, Norm.L2: 1.0, Norm.L1: 4.0}[norm]
    threat = ThreatModel(norm, eps)
    fixed = attack_batch(PGD(steps=10, early_stop=False), default_model, x, y, threat, 3)
    early = attack_batch(PGD(steps=10), default_model, x, y, threat, 3)
    assert abs(int(fixed.correct.sum()) - int(early.correct.sum())) <= 1
    assert early.queries < fixed.queries


def test_pgd_l1_and_fgm(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    l1 = ThreatModel(Norm.L1, 4.0)
    x_l1 = PGD(steps=20).run(default_model, x, Misclassification(y), l1,
                             torch.Generator().manual_seed(0))
    assert bool(l1.contains(x_l1, x).all())
    assert (default_model.predict(x_l1) != y).float().mean() > 0.3
    l2 = ThreatModel(Norm.L2, 1.5)
    x_l2 = FGM().run(default_model, x, Misclassification(y), l2, torch.Generator())
    assert bool(l2.contains(x_l2, x).all())
    assert float(l2.distances(x_l2, x).min()) > 0.5  # a full step, shortened only by the box
    assert (default_model.predict(x_l2) != y).any()


def test_attack_spec_parsing(catalogue: Catalogue) -> None:
    assert parse_attack_spec("pgd:steps=40,random_start=false") == (
        "pgd", {"steps": 40, "random_start": False})
    attack = build_attack("pgd:steps=7", catalogue)
    assert isinstance(attack, PGD) and attack.steps == 7
    assert repr(attack) == ("PGD(steps=7, rel_step_size=0.25, random_start=True, restarts=1, "
                            "early_stop=True, l1_top_fraction=0.05)")
    with pytest.raises(AttackError, match="accepts: steps, rel_step_size"):
        build_attack("pgd:bogus=1", catalogue)
    with pytest.raises(AttackError):
        build_attack("pgd:steps=0", catalogue)
    with pytest.raises(UnknownAttackError, match=r"fgsm, .*pgd"):
        build_attack("nope", catalogue)
