"""Auto-PGD (APGD-CE, APGD-DLR, APGD-T) on the default model, and the DLR losses."""

from __future__ import annotations

import pytest
import torch
from small_models import ScoreAbove

from robustbench_lite.attacks.apgd import APGDCE, APGDDLR, APGDT
from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import AttackError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.losses import dlr_loss, targeted_dlr_loss
from robustbench_lite.tasks.classification.objectives import (
    CLASS_ROUNDS,
    DLR,
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.threat import Norm, ThreatModel

Batch = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture
def digits_128(digits_test: EvalData) -> Batch:
    """The first 128 test digits, misclassified ones included."""
    return digits_test.x[:128], digits_test.y[:128]


@pytest.mark.parametrize("threat", [ThreatModel(Norm.LINF, 0.1), ThreatModel(Norm.L2, 1.0)],
                         ids=lambda t: t.label)
@pytest.mark.parametrize("attack", [APGDCE(steps=5), APGDDLR(steps=5),
                                    APGDT(steps=3, n_target_classes=2)], ids=repr)
def test_output_inside_threat_model(attack: Attack, threat: ThreatModel,
                                    default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    x_adv = attack.run(default_model, x, Misclassification(y), threat,
                       torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert bool(threat.contains(x_adv, x).all())
    assert bool((default_model.predict(x_adv) != y).any())


def fooled(attack: Attack, model: RobustModel, batch: Batch, threat: ThreatModel,
           seed: int = 0) -> int:
    x, y = batch
    outcome = attack_batch(attack, model, x, y, threat, seed=seed)
    assert bool(outcome.valid.all())
    return int(outcome.success.sum())


def test_apgd_ce_at_least_as_strong_as_pgd(default_model: RobustModel,
                                           digits_128: Batch) -> None:
    threat = ThreatModel(Norm.LINF, 0.1)
    pgd = fooled(PGD(steps=20), default_model, digits_128, threat)
    apgd = fooled(APGDCE(steps=20), default_model, digits_128, threat)
    assert apgd >= pgd - 1
    assert apgd > 0


def test_apgd_t_at_least_as_strong_as_apgd_ce(default_model: RobustModel,
                                              digits_128: Batch) -> None:
    threat = ThreatModel(Norm.LINF, 0.1)
    ce = fooled(APGDCE(steps=20), default_model, digits_128, threat)
    targeted = fooled(APGDT(steps=20), default_model, digits_128, threat)
    assert targeted >= ce - 1


@pytest.mark.parametrize("attack", [APGDCE(steps=20), APGDDLR(steps=20), APGDT(steps=20)],
                         ids=repr)
def test_targeted_threat_reaches_targets(attack: Attack, default_model: RobustModel,
                                         tiny_batch: Batch) -> None:
    x, y = tiny_batch
    target = (y + 1) % 10
    threat = ThreatModel(Norm.LINF, 0.3, targeted=True)
    outcome = attack_batch(attack, default_model, x, y, threat, seed=0, targets=target)
    assert bool(outcome.valid.all())
    assert float((outcome.outputs.argmax(dim=1) == target).float().mean()) > 0.8


@pytest.mark.parametrize("attack", [APGDCE(steps=5), APGDT(steps=3, n_target_classes=2)],
                         ids=repr)
def test_same_seed_same_batch(attack: Attack, default_model: RobustModel,
                              tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.1)
    goal = Misclassification(y)
    first = attack.run(default_model, x, goal, threat, torch.Generator().manual_seed(7))
    again = attack.run(default_model, x, goal, threat, torch.Generator().manual_seed(7))
    other = attack.run(default_model, x, goal, threat, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_zero_eps_leaves_images_unchanged(norm: Norm, default_model: RobustModel,
                                          tiny_batch: Batch) -> None:
    x, y = tiny_batch
    for attack in (APGDCE(steps=3), APGDT(steps=3)):
        outcome = attack_batch(attack, default_model, x, y, ThreatModel(norm, 0.0), 0)
        assert torch.equal(outcome.x_adv, x)
        assert bool(outcome.correct.all())


def test_misclassified_samples_are_returned_unchanged(default_model: RobustModel,
                                                      digits_test: EvalData) -> None:
    wrong = default_model.predict(digits_test.x) != digits_test.y
    assert bool(wrong.any())
    x, y = digits_test.x[wrong], digits_test.y[wrong]
    outcome = attack_batch(APGDCE(steps=5), default_model, x, y, ThreatModel(Norm.LINF, 0.1), 0)
    assert torch.equal(outcome.x_adv, x)
    assert outcome.queries == len(x)  # the clean forward pass only


def test_query_budget(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch[0][:16], tiny_batch[1][:16]
    threat = ThreatModel(Norm.LINF, 0.1)
    steps = 5
    outcome = attack_batch(APGDCE(steps=steps), default_model, x, y, threat, 0)
    assert outcome.queries <= len(x) * (steps + 2)
    outcome = attack_batch(APGDT(steps=steps, n_target_classes=3), default_model, x, y,
                           threat, 0)
    assert outcome.queries <= len(x) * (3 * (steps + 1) + 1)


def test_dlr_loss_on_hand_made_logits() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0], [3.0, 1.0, 2.0, 0.0]])
    # Sorted: 3, 2, 1, 0. True class 0 (correct): -(3 - 2) / (3 - 1); true class 1: -(1 - 3) / 2.
    got = dlr_loss(logits, torch.tensor([0, 1]))
    assert torch.allclose(got, torch.tensor([-0.5, 1.0]))
    # Targeted: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(3 - 2) / 2.5 and -(1 - 0) / 2.5.
    got = targeted_dlr_loss(logits, torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert torch.allclose(got, torch.tensor([-0.4, -0.4]))
    # Invariant to shifting and positive rescaling of the logits.
    shifted = 7.0 * logits - 4.0
    assert torch.allclose(dlr_loss(shifted, torch.tensor([0, 1])), torch.tensor([-0.5, 1.0]))
    # Equal logits do not divide by zero.
    assert torch.isfinite(dlr_loss(torch.zeros(1, 4), torch.tensor([0]))).all()
    with pytest.raises(AttackError):
        dlr_loss(torch.zeros(1, 2), torch.tensor([0]))
    with pytest.raises(AttackError):
        targeted_dlr_loss(torch.zeros(1, 3), torch.tensor([0]), torch.tensor([1]))


def test_hyperparameters() -> None:
    assert APGDCE().params == {"steps": 100, "restarts": 1, "rho": 0.75}
    assert APGDT().params == {"steps": 100, "restarts": 1, "rho": 0.75,
                              "n_target_classes": 9}
    assert (APGDCE.name, APGDDLR.name, APGDT.name) == ("apgd-ce", "apgd-dlr", "apgd-t")
    assert APGDT().supports(ThreatModel(Norm.L2, 0.5, targeted=True))
    assert not APGDCE().supports(ThreatModel(Norm.L1, 1.0))
    assert APGDCE().requires == frozenset()
    assert APGDDLR().requires == {DLR} and APGDT().requires == {DLR, CLASS_ROUNDS}
    for attack in (APGDCE(), APGDDLR(), APGDT()):
        assert attack.serves(Misclassification) and attack.serves(TargetedMisclassification)
    for bad in ({"steps": 0}, {"restarts": 0}, {"rho": 0.0}, {"rho": 1.5}):
        with pytest.raises(AttackError):
            APGDCE(**bad)
    with pytest.raises(AttackError):
        APGDT(n_target_classes=0)


def test_dlr_attacks_need_the_dlr_capability() -> None:
    assert not APGDDLR().serves(ScoreAbove) and not APGDT().serves(ScoreAbove)
    assert APGDCE().serves(ScoreAbove)
    assert "dlr" in APGDDLR().unserved_reason(ScoreAbove)
    assert "class-rounds" in APGDT().unserved_reason(ScoreAbove)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1))
    x = torch.rand(3, 4)
    with pytest.raises(AttackError, match="DLR"):
        APGDDLR(steps=2).run(lambda batch: model(batch) - 100, x, ScoreAbove(torch.arange(3)),
                             ThreatModel(Norm.LINF, 0.1), torch.Generator().manual_seed(0))


def test_apgd_t_runs_one_round_per_class(default_model: RobustModel, tiny_batch: Batch) -> None:
    """Untargeted, APGD-T runs toward the most likely other classes in turn; each round
    only attacks what the earlier ones left, as before the objective API."""
    x, y = tiny_batch[0][:16], tiny_batch[1][:16]
    threat = ThreatModel(Norm.LINF, 0.1)
    one = attack_batch(APGDT(steps=5, n_target_classes=1), default_model, x, y, threat, 0)
    three = attack_batch(APGDT(steps=5, n_target_classes=3), default_model, x, y, threat, 0)
    assert int(three.success.sum()) >= int(one.success.sum())
    assert three.queries > one.queries or bool(one.success.all())
