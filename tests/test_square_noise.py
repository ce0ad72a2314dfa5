"""Square Attack and the random-noise baseline on the default model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.noise import NoiseAttack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.attacks.square import SquareAttack, meta_pattern, p_schedule
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import AttackError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.objectives import (
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.tasks.objective import ModelFn
from robustbench_lite.threat import Norm, ThreatModel

Batch = tuple[torch.Tensor, torch.Tensor]
THREATS = [ThreatModel(Norm.LINF, 0.1), ThreatModel(Norm.L2, 1.0)]


class CallLog:
    """Counts calls and rows; a sample is queried at most once per call."""

    def __init__(self, model: ModelFn) -> None:
        self.model = model
        self.sizes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.model(x)


def fooled(model: RobustModel, x_adv: torch.Tensor, y: torch.Tensor) -> int:
    return int((model.predict(x_adv) != y).sum())


@pytest.mark.parametrize("threat", THREATS, ids=lambda t: t.label)
@pytest.mark.parametrize("attack", [SquareAttack(n_queries=100), NoiseAttack(),
                                    NoiseAttack(distribution="gaussian")], ids=repr)
def test_output_inside_threat_model(attack: Attack, threat: ThreatModel,
                                    default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    x_adv = attack.run(default_model, x, Misclassification(y), threat,
                       torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert bool(threat.contains(x_adv, x).all())
    if isinstance(attack, SquareAttack):
        assert fooled(default_model, x_adv, y) > 0


def test_square_beats_noise_at_linf_02(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.2)
    square = attack_batch(SquareAttack(n_queries=1000), default_model, x, y, threat, seed=0)
    noise = attack_batch(NoiseAttack(samples=20), default_model, x, y, threat, seed=0)
    square_fooled = int(square.success.sum())
    noise_fooled = int(noise.success.sum())
    assert square_fooled >= 0.8 * len(x)
    assert square_fooled >= noise_fooled
    assert square.queries <= 1000 * len(x) and noise.queries <= 20 * len(x)


def test_square_close_to_pgd_and_counts_queries(default_model: RobustModel,
                                                digits_test: EvalData) -> None:
    """On 128 digits at Linf 0.1 (measured: PGD-50 60.9%, Square with 300 queries 62.5%
    robust accuracy)."""
    x, y = digits_test.x[:128], digits_test.y[:128]
    threat = ThreatModel(Norm.LINF, 0.1)
    n_queries = 300
    log = CallLog(default_model)
    x_adv = SquareAttack(n_queries=n_queries).run(log, x, Misclassification(y), threat,
                                                  torch.Generator().manual_seed(0))
    assert bool(threat.contains(x_adv, x).all())
    square_acc = float((default_model.predict(x_adv) == y).float().mean())
    pgd = attack_batch(PGD(steps=50), default_model, x, y, threat, seed=0)
    pgd_acc = float(pgd.correct.float().mean())
    assert square_acc <= pgd_acc + 0.10
    # every call holds each sample at most once: calls bound the per-sample queries
    assert len(log.sizes) <= n_queries and max(log.sizes) <= len(x)
    assert sum(log.sizes) < n_queries * len(x)  # broken samples leave the batch
    assert log.sizes == sorted(log.sizes, reverse=True)


@pytest.mark.parametrize("threat", THREATS, ids=lambda t: t.label)
@pytest.mark.parametrize("make", [lambda: SquareAttack(n_queries=40),
                                  lambda: NoiseAttack(samples=3)], ids=["square", "noise"])
def test_same_seed_same_output(make: Callable[[], Attack], threat: ThreatModel,
                               default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch[0][:16], tiny_batch[1][:16]
    first = attack_batch(make(), default_model, x, y, threat, seed=5).x_adv
    again = attack_batch(make(), default_model, x, y, threat, seed=5).x_adv
    other = attack_batch(make(), default_model, x, y, threat, seed=6).x_adv
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
@pytest.mark.parametrize("attack", [SquareAttack(n_queries=20), NoiseAttack()], ids=repr)
def test_zero_eps_leaves_input_unchanged(attack: Attack, norm: Norm,
                                         default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch
    outcome = attack_batch(attack, default_model, x, y, ThreatModel(norm, 0.0), seed=0)
    assert torch.equal(outcome.x_adv, x)


@pytest.mark.parametrize("threat", THREATS, ids=lambda t: t.label)
@pytest.mark.parametrize("attack", [SquareAttack(n_queries=50), NoiseAttack()], ids=repr)
def test_batch_of_one(attack: Attack, threat: ThreatModel, default_model: RobustModel,
                      tiny_batch: Batch) -> None:
    x, y = tiny_batch[0][:1], tiny_batch[1][:1]
    outcome = attack_batch(attack, default_model, x, y, threat, seed=0)
    assert outcome.x_adv.shape == x.shape and bool(outcome.valid.all())
    assert 1 <= outcome.queries <= 50


def test_square_and_noise_serve_both_classification_objectives() -> None:
    for attack in (SquareAttack(), NoiseAttack()):
        assert attack.requires == frozenset()
        assert attack.serves(Misclassification) and attack.serves(TargetedMisclassification)


def test_noise_rejects_unknown_distribution() -> None:
    with pytest.raises(AttackError, match="uniform, gaussian"):
        NoiseAttack(distribution="laplace")
    with pytest.raises(AttackError):
        NoiseAttack(samples=0)
    with pytest.raises(AttackError):
        SquareAttack(p_init=0.0)


def test_targeted_square_reaches_target(default_model: RobustModel, tiny_batch: Batch) -> None:
    x, y = tiny_batch[0][:16], tiny_batch[1][:16]
    target = (y + 1) % 10
    threat = ThreatModel(Norm.LINF, 0.3, targeted=True)
    outcome = attack_batch(SquareAttack(n_queries=300), default_model, x, y, threat, 0,
                           targets=target)
    assert bool(outcome.valid.all())
    assert float((outcome.outputs.argmax(dim=1) == target).float().mean()) >= 0.75


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 1, 1), (1, 2, 9), (4, 3), (6,)], ids=str)
@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_any_image_size_and_channels(shape: tuple[int, ...], norm: Norm) -> None:
    torch.manual_seed(0)
    features = 1
    for size in shape:
        features *= size
    net = nn.Sequential(nn.Flatten(), nn.Linear(features, 4))
    x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x).argmax(dim=1)
    threat = ThreatModel(norm, 0.3)
    for attack in (SquareAttack(n_queries=30), NoiseAttack(samples=3)):
        log = CallLog(net)
        x_adv = attack.run(log, x, Misclassification(y), threat,
                           torch.Generator().manual_seed(2))
        assert x_adv.shape == x.shape
        assert bool(threat.contains(x_adv, x).all())
        assert max(log.sizes) <= len(x) and len(log.sizes) <= 30


def test_helpers() -> None:
    assert p_schedule(0.8, 0, 10000) == 0.8 and p_schedule(0.8, 11, 10000) == 0.4
    assert p_schedule(0.8, 9999, 10000) == pytest.approx(0.8 / 512)
    assert p_schedule(0.8, 500, 1000) == pytest.approx(0.8 / 128)  # 5000 of 10000
    # Square minimises the objective's margin: z_y - max_{i != y} z_i (untargeted), and
    # max_{i != t} z_i - z_t (targeted).
    logits = torch.tensor([[3.0, 1.0, 2.0]])
    assert Misclassification(torch.tensor([0])).margin(logits).item() == 1.0
    assert TargetedMisclassification(torch.tensor([0]),
                                     torch.tensor([1])).margin(logits).item() == 2.0
    for side in (1, 2, 3, 7):
        pattern = meta_pattern(side, torch.device("cpu"), torch.float32)
        assert pattern.shape == (side, side)
        assert float(pattern.norm()) == pytest.approx(1.0)
