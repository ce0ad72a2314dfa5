"""The minimum-norm attacks (DeepFool, Carlini & Wagner L2) on the default model, and a
comparison with foolbox's implementations where foolbox is installed."""

from __future__ import annotations

import pytest
import torch

from robustbench_lite.attacks.base import MinimumNormAttack
from robustbench_lite.attacks.carlini_wagner import CarliniWagnerL2
from robustbench_lite.attacks.deepfool import DeepFool
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import AttackError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.objectives import (
    LABELS,
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.threat import Norm, ThreatModel

Batch = tuple[torch.Tensor, torch.Tensor]

#: Cheaper than the defaults (9 x 100 steps from c = 1e-3) but as strong on this model: the
#: search starts near the constants that matter for logit margins of a few units.
CW_SEARCH, CW_STEPS, CW_LR, CW_CONST = 4, 100, 0.1, 1.0


def _cw_fast() -> CarliniWagnerL2:
    return CarliniWagnerL2(binary_search_steps=CW_SEARCH, steps=CW_STEPS, learning_rate=CW_LR,
                           initial_const=CW_CONST)


@pytest.fixture(scope="module")
def batch(digits_test: EvalData, default_model: RobustModel) -> Batch:
    """64 correctly classified digits (as ``tiny_batch``, shared by the module)."""
    correct = default_model.predict(digits_test.x) == digits_test.y
    return digits_test.x[correct][:64], digits_test.y[correct][:64]


def _minimal(attack: MinimumNormAttack, model: RobustModel, batch: Batch,
             norm: Norm) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch
    goal = Misclassification(y)
    x_min = attack.find_minimal(model, x, goal, norm, torch.Generator().manual_seed(0))
    return x_min, MinimumNormAttack.distances(model, x, x_min, goal, norm)


@pytest.fixture(scope="module")
def deepfool_l2(default_model: RobustModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return _minimal(DeepFool(), default_model, batch, Norm.L2)


@pytest.fixture(scope="module")
def cw_l2(default_model: RobustModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return _minimal(_cw_fast(), default_model, batch, Norm.L2)


def _median(distances: torch.Tensor) -> float:
    return float(distances.median())


def test_deepfool_l2_fools_almost_everything(batch: Batch,
                                             deepfool_l2: tuple[torch.Tensor, torch.Tensor],
                                             ) -> None:
    x, _ = batch
    x_min, distances = deepfool_l2
    assert x_min.shape == x.shape and x_min.dtype == x.dtype
    assert float(x_min.min()) >= 0 and float(x_min.max()) <= 1
    assert float(distances.isfinite().float().mean()) >= 0.95
    # Not a trivial "anything goes": the digits are fooled by clearly sub-maximal changes.
    assert 0 < _median(distances) < 2.0


def test_deepfool_linf_fools_almost_everything(default_model: RobustModel, batch: Batch) -> None:
    x_min, distances = _minimal(DeepFool(), default_model, batch, Norm.LINF)
    assert float(distances.isfinite().float().mean()) >= 0.95
    assert 0 < _median(distances) < 0.5
    assert float(x_min.min()) >= 0 and float(x_min.max()) <= 1


def test_cw_l2_fools_almost_everything(batch: Batch,
                                       cw_l2: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = batch
    x_min, distances = cw_l2
    assert x_min.shape == x.shape and x_min.dtype == x.dtype
    assert float(x_min.min()) >= 0 and float(x_min.max()) <= 1
    assert float(distances.isfinite().float().mean()) >= 0.95


def test_cw_finds_perturbations_no_larger_than_deepfool(
        deepfool_l2: tuple[torch.Tensor, torch.Tensor],
        cw_l2: tuple[torch.Tensor, torch.Tensor]) -> None:
    deepfool_median, cw_median = _median(deepfool_l2[1]), _median(cw_l2[1])
    print(f"median L2: deepfool {deepfool_median:.4f}, cw-l2 {cw_median:.4f}")
    assert cw_median <= 1.1 * deepfool_median


def test_unfooled_samples_are_returned_unchanged(default_model: RobustModel,
                                                 batch: Batch) -> None:
    x, y = batch
    goal = Misclassification(y)
    x_min = DeepFool(steps=1).find_minimal(default_model, x, goal, Norm.L2,
                                           torch.Generator().manual_seed(0))
    cw_min = CarliniWagnerL2(binary_search_steps=1, steps=2).find_minimal(
        default_model, x, goal, Norm.L2, torch.Generator().manual_seed(0))
    for found in (x_min, cw_min):
        distances = MinimumNormAttack.distances(default_model, x, found, goal, Norm.L2)
        unfooled = ~distances.isfinite()
        assert bool(unfooled.any())
        assert torch.equal(found[unfooled], x[unfooled])


@pytest.mark.parametrize("name", ["deepfool_l2", "cw_l2"])
def test_run_projects_into_threat_and_keeps_breaks_within_eps(
        name: str, default_model: RobustModel, batch: Batch,
        request: pytest.FixtureRequest) -> None:
    x, y = batch
    _, distances = request.getfixturevalue(name)
    attack = DeepFool() if name == "deepfool_l2" else _cw_fast()
    eps = _median(distances)
    threat = ThreatModel(Norm.L2, eps)
    # `attack_batch` calls `run` as the host does, and verifies its output.
    outcome = attack_batch(attack, default_model, x, y, threat, seed=0)
    assert bool(outcome.valid.all()) and not outcome.problems
    assert bool(threat.contains(outcome.x_adv, x).all())
    broken = outcome.success
    # Every sample whose minimal perturbation fits in the ball is broken by `run` ...
    assert bool(broken[distances <= eps].all())
    # ... so robust accuracy at eps is at most the fraction of larger minimal distances.
    accuracy = float((~broken).float().mean())
    assert accuracy <= float((distances > eps).float().mean())


def test_deepfool_linf_run_inside_threat(default_model: RobustModel, batch: Batch) -> None:
    x, y = batch
    threat = ThreatModel(Norm.LINF, 0.1)
    outcome = attack_batch(DeepFool(), default_model, x, y, threat, seed=0)
    assert bool(outcome.valid.all())
    assert bool(outcome.success.any())


def test_same_seed_same_result(default_model: RobustModel, batch: Batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    threat = ThreatModel(Norm.L2, 0.5)
    small_cw = CarliniWagnerL2(binary_search_steps=2, steps=20)
    for attack in (DeepFool(), small_cw):
        first = attack_batch(attack, default_model, x, y, threat, seed=3).x_adv
        again = attack_batch(attack, default_model, x, y, threat, seed=3).x_adv
        assert torch.equal(first, again)


@pytest.mark.parametrize("norm", [Norm.L2, Norm.LINF])
def test_batch_of_one_and_empty_batch(norm: Norm, default_model: RobustModel,
                                      batch: Batch) -> None:
    x, y = batch
    attacks: list[MinimumNormAttack] = [DeepFool()]
    if norm is Norm.L2:
        attacks.append(CarliniWagnerL2(binary_search_steps=3, steps=50, learning_rate=0.1,
                                       initial_const=1.0))
    for attack in attacks:
        found = attack.find_minimal(default_model, x[:1], Misclassification(y[:1]), norm,
                                    torch.Generator().manual_seed(0))
        assert found.shape == x[:1].shape
        assert bool((default_model.predict(found) != y[:1]).all())
        empty = attack.find_minimal(default_model, x[:0], Misclassification(y[:0]), norm,
                                    torch.Generator().manual_seed(0))
        assert empty.shape == x[:0].shape


def test_targeted_cw_reaches_target(default_model: RobustModel, batch: Batch) -> None:
    x, y = batch[0][:32], batch[1][:32]
    target = (y + 1) % 10
    threat = ThreatModel(Norm.L2, 10.0, targeted=True)
    attack = CarliniWagnerL2(binary_search_steps=3, steps=50, learning_rate=0.1,
                             initial_const=1.0)
    outcome = attack_batch(attack, default_model, x, y, threat, seed=0, targets=target)
    assert bool(outcome.valid.all())
    assert float((outcome.outputs.argmax(dim=1) == target).float().mean()) >= 0.9


def test_targeted_cw_find_minimal_reaches_target(default_model: RobustModel,
                                                  batch: Batch) -> None:
    """`find_minimal` on a targeted objective looks for the nearest example of the target
    class, and `distances` counts only those."""
    x, y = batch[0][:16], batch[1][:16]
    goal = TargetedMisclassification(y, (y + 1) % 10)
    attack = CarliniWagnerL2(binary_search_steps=3, steps=50, learning_rate=0.1,
                             initial_const=1.0)
    found = attack.find_minimal(default_model, x, goal, Norm.L2,
                                torch.Generator().manual_seed(0))
    distances = MinimumNormAttack.distances(default_model, x, found, goal, Norm.L2)
    reached = default_model.predict(found) == goal.targets
    assert float(reached.float().mean()) >= 0.9
    assert torch.equal(distances.isfinite(), reached)


def test_misclassified_samples_need_no_perturbation(default_model: RobustModel,
                                                    batch: Batch) -> None:
    x, y = batch
    wrong = Misclassification((y[:8] + 1) % 10)  # labels the model does not predict
    for attack in (DeepFool(), CarliniWagnerL2(binary_search_steps=1, steps=5)):
        found = attack.find_minimal(default_model, x[:8], wrong, Norm.L2,
                                    torch.Generator().manual_seed(0))
        distances = MinimumNormAttack.distances(default_model, x[:8], found, wrong, Norm.L2)
        assert float(distances.max()) < 1e-3


def test_support_and_arguments() -> None:
    assert DeepFool().supports(ThreatModel(Norm.LINF, 0.1))
    assert DeepFool().supports(ThreatModel(Norm.L2, 0.5))
    assert not DeepFool().supports(ThreatModel(Norm.L1, 5.0))
    assert DeepFool().requires == {LABELS}
    assert DeepFool().serves(Misclassification)
    assert not DeepFool().serves(TargetedMisclassification)  # untargeted only
    assert "labels" in DeepFool().unserved_reason(TargetedMisclassification)
    assert CarliniWagnerL2().supports(ThreatModel(Norm.L2, 0.5))
    assert CarliniWagnerL2().serves(Misclassification)
    assert CarliniWagnerL2().serves(TargetedMisclassification)
    assert not CarliniWagnerL2().supports(ThreatModel(Norm.LINF, 0.1))
    assert DeepFool().params == {"steps": 50, "overshoot": 0.02, "candidates": 10}
    assert CarliniWagnerL2().params["initial_const"] == 1e-3
    with pytest.raises(AttackError):
        DeepFool(candidates=1)
    zero = torch.zeros(1, dtype=torch.long)
    with pytest.raises(AttackError, match="labels"):
        DeepFool().run(lambda x: x.flatten(1), torch.zeros(1, 2),
                       TargetedMisclassification(zero, zero + 1),
                       ThreatModel(Norm.L2, 1.0, targeted=True), torch.Generator())
    with pytest.raises(AttackError):
        CarliniWagnerL2().find_minimal(lambda x: x.flatten(1), torch.zeros(1, 2),
                                       Misclassification(zero), Norm.LINF, torch.Generator())
    with pytest.raises(AttackError):
        CarliniWagnerL2(steps=0)


# --- comparison with foolbox 3 -----------------------------------------------------------


def _foolbox_distances(attack: object, model: RobustModel, batch: Batch) -> torch.Tensor:
    foolbox = pytest.importorskip("foolbox")
    x, y = batch
    fmodel = foolbox.PyTorchModel(model.module, bounds=(0, 1))
    # Minimisation attacks with epsilons=None return the unclipped minimal examples.
    _, found, _ = attack(fmodel, x, y, epsilons=None)  # type: ignore[operator]
    return MinimumNormAttack.distances(model, x, found, Misclassification(y), Norm.L2)


def test_deepfool_l2_matches_foolbox(default_model: RobustModel, batch: Batch,
                                     deepfool_l2: tuple[torch.Tensor, torch.Tensor]) -> None:
    foolbox = pytest.importorskip("foolbox")
    theirs = _foolbox_distances(
        foolbox.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02),
        default_model, batch)
    ours = deepfool_l2[1]
    print(f"median L2 deepfool: ours {_median(ours):.4f}, foolbox {_median(theirs):.4f}")
    assert _median(ours) <= 1.1 * _median(theirs)
    assert float(ours.isfinite().float().mean()) >= float(theirs.isfinite().float().mean())


def test_cw_l2_matches_foolbox(default_model: RobustModel, batch: Batch,
                               cw_l2: tuple[torch.Tensor, torch.Tensor]) -> None:
    foolbox = pytest.importorskip("foolbox")
    theirs = _foolbox_distances(
        foolbox.attacks.L2CarliniWagnerAttack(
            binary_search_steps=CW_SEARCH, steps=CW_STEPS, stepsize=CW_LR,
            initial_const=CW_CONST),
        default_model, batch)
    ours = cw_l2[1]
    print(f"median L2 cw: ours {_median(ours):.4f}, foolbox {_median(theirs):.4f}")
    assert _median(ours) <= 1.1 * _median(theirs)
