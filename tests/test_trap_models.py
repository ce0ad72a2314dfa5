"""The gradient-masking traps of `trap_models` and the honest models: what each does to a plain,
non-adaptive attack, measured on the bundled digits CNN (numbers: 1 torch thread, x86 CPU).

Clean accuracy on the 450 test digits; PGD(steps=10) accuracy at Linf 0.1 on the first 100,
attack seed 0 (the inner model: 96% clean and 65% under PGD on those 100):

=================  =======  ====  ==========================================================
model              clean    PGD   how it masks
=================  =======  ====  ==========================================================
default (inner)    98.2%    65%   -
quantized (16)     98.2%    96%   torch.round: input gradient exactly 0 for every sample
huge temperature   98.2%    96%   logits x 1e4: CE gradient underflows to exactly 0
jpeg (quality 50)  98.0%    97%   torch.round of DCT coefficients: gradient exactly 0
random noise 0.2   93.6%    77%   fresh noise per forward: two passes disagree on ~8%
probabilities      98.2%    65%   none for PGD: sign(gradient) is unchanged
PGD-trained        98.7%    84%   honest (15 epochs of PGD training, ~15 s)
=================  =======  ====  ==========================================================

Each trap is false robustness: the adaptive attack for it (straight-through for
``torch.round``, EOT for noise, rescaled logits for the temperature) brings PGD back to the
inner model's level.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from trap_models import (
    HugeTemperature,
    JpegLike,
    ProbabilityOutput,
    QuantizedInput,
    RandomNoiseInput,
    dct_matrix,
    jpeg_table,
    pgd_trained_model,
    robust_model,
    trap_models,
)

from robustbench_lite.attacks import APGDCE, APGDDLR, APGDT, FGSM, PGD, DeepFool, SquareAttack
from robustbench_lite.attacks.backends import FoolboxAttack
from robustbench_lite.checks.adapt import adapted, expectation, rescaled, straight_through
from robustbench_lite.checks.base import Adaptation
from robustbench_lite.checks.probes import input_gradients, masked_share
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.objectives import (
    Misclassification,
    TargetedMisclassification,
)
from robustbench_lite.threat import Norm, ThreatModel

THREAT = ThreatModel(Norm.LINF, 0.1)
ModelFn = Callable[[torch.Tensor], torch.Tensor]

# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def inner(default_model: RobustModel) -> nn.Module:
    return default_model.module


@pytest.fixture(scope="module")
def traps(inner: nn.Module) -> dict[str, RobustModel]:
    return trap_models(inner)


@pytest.fixture(scope="module")
def hundred(digits_test: EvalData) -> EvalData:
    return digits_test.subset(100)


@pytest.fixture(scope="module")
def probes(digits_test: EvalData, default_model: RobustModel) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """64 samples the default model classifies correctly, in data order (as checks probe)."""
    correct = default_model.predict(digits_test.x) == digits_test.y
    return digits_test.x[correct][:64], digits_test.y[correct][:64]


@pytest.fixture(scope="module")
def pgd_model() -> RobustModel:
    """The PGD-trained digits CNN, trained once per process (`pgd_trained_model`)."""
    return pgd_trained_model()


def reseed(model: RobustModel) -> None:
    if isinstance(model.module, RandomNoiseInput):
        model.module.reseed()


def clean_accuracy(model: RobustModel, data: EvalData) -> float:
    reseed(model)
    return float((model.predict(data.x) == data.y).float().mean())


def pgd_accuracy(model: RobustModel, data: EvalData,
                 wrap: Callable[[ModelFn], ModelFn] | None = None) -> float:
    """Accuracy under PGD(steps=10) at Linf 0.1 (seed 0); ``wrap`` changes only the function
    the attack differentiates, never the one that judges."""
    reseed(model)
    attacked = wrap(model) if wrap is not None else model
    x_adv = PGD(steps=10).run(attacked, data.x, Misclassification(data.y), THREAT,
                              torch.Generator().manual_seed(0))
    return float((model.predict(x_adv) == data.y).float().mean())


def zero_gradient_share(model: RobustModel, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of samples whose input gradient of the cross-entropy is exactly 0."""
    reseed(model)
    return masked_share(input_gradients(model, x, Misclassification(y)))[0]


@pytest.fixture(scope="module")
def default_pgd(default_model: RobustModel, hundred: EvalData) -> float:
    accuracy = pgd_accuracy(default_model, hundred)
    assert accuracy == pytest.approx(0.65, abs=0.05)
    return accuracy


# ---------------------------------------------------------------- the building blocks


def test_dct_matrix_is_orthonormal() -> None:
    dct = dct_matrix(8)
    assert torch.allclose(dct @ dct.T, torch.eye(8), atol=1e-6)
    assert torch.allclose(dct[0], torch.full((8,), 8 ** -0.5))


def test_jpeg_keeps_images_in_range_and_is_near_identity_at_quality_100(
        inner: nn.Module, digits_test: EvalData) -> None:
    assert jpeg_table(100).max() == pytest.approx(1 / 255)
    x = digits_test.x[:32]
    for quality in (50, 100):
        compressed = JpegLike(inner, quality=quality).compress(x)
        assert compressed.shape == x.shape
        assert compressed.min() >= 0 and compressed.max() <= 1
    assert (JpegLike(inner, quality=100).compress(x) - x).abs().max() < 0.02
    assert (JpegLike(inner, quality=50).compress(x) - x).abs().max() > 0.05
    with pytest.raises(ValueError, match="divisible by 8"):
        JpegLike(inner).compress(torch.zeros(1, 1, 8, 12))


def test_quantized_input_rounds_to_its_levels(inner: nn.Module) -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = QuantizedInput(nn.Identity(), levels=4)(x)
    assert torch.allclose(out * 3, (out * 3).round(), atol=1e-6)
    assert (out - x).abs().max() <= 1 / 6 + 1e-6
    with pytest.raises(ValueError, match="at least 2"):
        QuantizedInput(inner, levels=1)


def test_random_noise_is_seeded(inner: nn.Module, digits_test: EvalData) -> None:
    model = RandomNoiseInput(inner, seed=3)
    with torch.no_grad():
        first = model(digits_test.x[:16])
        second = model(digits_test.x[:16])
        model.reseed()
        again = model(digits_test.x[:16])
    assert not torch.equal(first, second)
    assert torch.equal(first, again)


# ---------------------------------------------------------------- the traps


@pytest.mark.parametrize("name", ["quantized", "jpeg"])
def test_non_differentiable_preprocessing_masks_every_gradient(
        name: str, default_model: RobustModel, traps: dict[str, RobustModel],
        digits_test: EvalData, hundred: EvalData, probes: tuple[torch.Tensor, torch.Tensor],
        default_pgd: float) -> None:
    """Quantised input (16 levels) and JPEG-like DCT quantisation (quality 50) keep clean
    accuracy (98.2% and 98.0% against 98.2%) and zero every input gradient, so PGD sees
    nothing (96% and 97%, every clean-correct sample, against 65%); straight-through
    gradients break them as the inner model (64% and 67%)."""
    trap = traps[name]
    assert clean_accuracy(trap, digits_test) >= clean_accuracy(default_model, digits_test) - 0.01
    assert zero_gradient_share(trap, *probes) == 1.0
    assert pgd_accuracy(trap, hundred) >= default_pgd + 0.25
    assert pgd_accuracy(trap, hundred, straight_through) <= default_pgd + 0.05


def test_huge_temperature_zeroes_the_cross_entropy_gradient(
        default_model: RobustModel, traps: dict[str, RobustModel], digits_test: EvalData,
        hundred: EvalData, probes: tuple[torch.Tensor, torch.Tensor],
        default_pgd: float) -> None:
    trap = traps["huge-temperature"]
    assert torch.equal(trap.predict(digits_test.x), default_model.predict(digits_test.x))
    # every probe's logit margin exceeds 104 / 1e4: the gradient is exactly 0 for all 64
    assert zero_gradient_share(trap, *probes) == 1.0
    assert zero_gradient_share(default_model, *probes) == 0.0
    assert pgd_accuracy(trap, hundred) >= default_pgd + 0.25  # 96% against 65%
    assert pgd_accuracy(trap, hundred, rescaled) <= default_pgd + 0.05  # 66%


def test_random_noise_fools_pgd_only_a_little(
        traps: dict[str, RobustModel], digits_test: EvalData, hundred: EvalData,
        probes: tuple[torch.Tensor, torch.Tensor], default_pgd: float) -> None:
    trap = traps["random-noise"]
    assert clean_accuracy(trap, digits_test) >= 0.9  # 93.6% (sigma 0.2)
    reseed(trap)
    first, second = trap.predict(digits_test.x), trap.predict(digits_test.x)
    assert 0.02 <= float((first != second).float().mean()) <= 0.15  # 8.4% disagree
    assert zero_gradient_share(trap, *probes) == 0.0  # noisy, never zero
    # single-sample gradients are noisy: 77% against 65%, but not a wall; EOT: 60%
    assert pgd_accuracy(trap, hundred) >= default_pgd + 0.05
    assert pgd_accuracy(trap, hundred, expectation(16)) <= default_pgd + 0.05


def test_probability_output_does_not_fool_pgd(
        default_model: RobustModel, traps: dict[str, RobustModel], digits_test: EvalData,
        hundred: EvalData, probes: tuple[torch.Tensor, torch.Tensor],
        default_pgd: float) -> None:
    """Probabilities are a trap only for attacks that read gradient magnitudes or logit
    scales; PGD's signed steps on this model's (margin 2..18) outputs are unchanged."""
    trap = traps["probabilities"]
    with torch.no_grad():
        out = trap(digits_test.x)
    assert torch.allclose(out.sum(dim=1), torch.ones(len(out)), atol=1e-5)
    assert torch.equal(out.argmax(dim=1), default_model.predict(digits_test.x))
    assert zero_gradient_share(trap, *probes) == 0.0
    assert pgd_accuracy(trap, hundred) == pytest.approx(default_pgd, abs=0.02)  # 65%


def test_trap_wrappers_leave_the_inner_model_alone(inner: nn.Module) -> None:
    for module in (QuantizedInput(inner), HugeTemperature(inner), JpegLike(inner),
                   RandomNoiseInput(inner), ProbabilityOutput(inner)):
        assert module.inner is inner
        assert sorted(name for name, _ in module.named_parameters()) == sorted(
            f"inner.{name}" for name, _ in inner.named_parameters())


@pytest.mark.slow
def test_audit_of_the_traps(traps: dict[str, RobustModel], hundred: EvalData) -> None:
    """What the audit's cells show (100 samples, Linf 0.1): gradient attacks see a wall,
    the score-based Square attack does not, and APGD-DLR, being scale-invariant, is not
    fooled by the temperature. Measured (inner model: 69 / 65 / 64 / 68 / 64%):

    - quantized: FGSM, PGD, APGD-CE, APGD-DLR 96%, Square 59%;
    - huge temperature: FGSM, PGD, APGD-CE 96%, APGD-DLR 68%, Square 64%.
    """
    attacks = [FGSM(), PGD(), APGDCE(), APGDDLR(), SquareAttack(n_queries=1000)]
    settings = AuditSettings(show_progress=False, examples=0)
    for name, blind in (("quantized", ["fgsm", "pgd", "apgd-ce", "apgd-dlr"]),
                        ("huge-temperature", ["fgsm", "pgd", "apgd-ce"])):
        result = run_audit(traps[name], hundred, attacks, [THREAT], settings, plugins=[])
        accuracy = {cell.attack: cell.accuracy for cell in result.cells}
        assert [accuracy[attack] for attack in blind] == pytest.approx(
            [result.clean_accuracy] * len(blind)), name
        assert accuracy["square"] is not None
        assert accuracy["square"] <= result.clean_accuracy - 0.25, name
        if name == "huge-temperature":
            assert accuracy["apgd-dlr"] is not None
            assert accuracy["apgd-dlr"] <= result.clean_accuracy - 0.2


# ---------------------------------------------------------------- the honest PGD-trained model


@pytest.mark.slow
def test_pgd_trained_model_is_robust(pgd_model: RobustModel, default_model: RobustModel,
                                     digits_test: EvalData, hundred: EvalData,
                                     probes: tuple[torch.Tensor, torch.Tensor],
                                     default_pgd: float) -> None:
    assert clean_accuracy(pgd_model, digits_test) >= 0.97  # 98.7%
    # 84% against 65%: real robustness, with honest (nonzero) gradients
    assert pgd_accuracy(pgd_model, hundred) >= default_pgd + 0.12
    assert zero_gradient_share(pgd_model, *probes) == 0.0
    assert pgd_trained_model() is pgd_model  # cached: other test modules reuse it


def test_robust_model_helper(inner: nn.Module) -> None:
    model = robust_model(HugeTemperature(inner), "trap: x")
    assert model.input_shape == (1, 8, 8) and model.num_classes == 10
    assert model.sha256 != robust_model(inner, "trap: y").sha256


def test_adapted_attacks_serve_what_their_inner_attack_serves(
        default_model: RobustModel, digits_test: EvalData) -> None:
    eot = Adaptation("eot", "randomised", expectation(2), layer=20)
    for attack in (PGD(steps=3), APGDT(steps=3), DeepFool(), FoolboxAttack(target="LinfPGD")):
        wrapped = adapted(attack, [eot])
        assert wrapped.name == f"{attack.name}+eot"
        assert wrapped.requires == attack.requires
        for objective in (Misclassification, TargetedMisclassification):
            assert wrapped.serves(objective) == attack.serves(objective)
        for threat in (THREAT, ThreatModel(Norm.L2, 1.0), ThreatModel(Norm.L1, 4.0)):
            assert wrapped.supports(threat) == attack.supports(threat)
    assert not adapted(DeepFool(), [eot]).serves(TargetedMisclassification)
    # the objective passes through unchanged: the same seed gives the same batch as the
    # plain attack on the wrapped model
    x, y = digits_test.x[:16], digits_test.y[:16]
    goal = TargetedMisclassification(y, (y + 1) % 10)
    plain = PGD(steps=3).run(eot.wrap(default_model), x, goal, THREAT,
                             torch.Generator().manual_seed(0))
    through = adapted(PGD(steps=3), [eot]).run(default_model, x, goal, THREAT,
                                               torch.Generator().manual_seed(0))
    assert torch.equal(plain, through)
