"""Spectral normalisation and the Lipschitz-margin certificate (`defenses.certify`).

The bound is checked layer by layer against exact operator norms from explicit Jacobians,
and for whole networks against empirical Lipschitz estimates; the certificate is checked for
tightness on a linear classifier (where it is exact) and for soundness with strong attacks on
a spectrally normalised `DigitsCNN` trained here (`train_spectral_cnn`: 20 epochs of Adam on
the 1347 training digits, ~6 s). Measured on the 450 test digits (1 torch thread, x86 CPU):

* clean accuracy 95.6%; Lipschitz bound 20.1 (~1.5 s): the convolutions 2.93, 2.82, 2.43
  (spectral normalisation constrains their reshaped weights, not their operator norms), the
  Linear layers 1.00; the largest local Jacobian norm at 50 test digits is 7.2;
* certified accuracy at L2 0.05 / 0.1 / 0.15 / 0.2 / 0.25: 80.2% / 54.7% / 22.4% / 0.7% / 0%
  (0% at 0.5 and 1.0);
* on the 246 samples certified at 0.1 no attack breaks a certificate: PGD (50 steps, 2
  restarts) at 0.999 x a radius within 10% below each sample's own breaks none (~3 s), and
  the smallest adversarial examples that DeepFool (~1 s) and C&W (~10 s) find all lie 4.2 to
  7.8 times the certified radius away (the bound is that loose, not unsound).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from trap_models import digits_train, robust_model

from robustbench_lite.attacks import PGD, CarliniWagnerL2, DeepFool, MinimumNormAttack
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses import layer_bounds as layer_bounds_module
from robustbench_lite.defenses.certify import (
    certified_accuracy,
    certified_radii,
    layer_bounds,
    lipschitz_bound,
)
from robustbench_lite.defenses.spectral import SpectralNormalization
from robustbench_lite.errors import DefenseError
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.normalize import Normalized
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel
from robustbench_lite.training.loop import deterministic_torch

DIGITS = (1, 8, 8)

# ---------------------------------------------------------------- helpers


def _jacobian_norm(fn: nn.Module, point: torch.Tensor) -> float:
    """Spectral norm of the Jacobian of ``fn`` at ``point`` (one sample, float64)."""
    jacobian = torch.autograd.functional.jacobian(fn, point.unsqueeze(0).double())
    out = math.prod(jacobian.shape[:jacobian.dim() - point.dim() - 1])
    return float(torch.linalg.matrix_norm(jacobian.reshape(out, point.numel()), ord=2))


def _operator_norm(layer: nn.Module, shape: tuple[int, ...]) -> float:
    """The exact norm of a (piecewise) linear layer: its Jacobian at a random point."""
    return _jacobian_norm(copy.deepcopy(layer).double().eval(),
                          torch.rand(shape, generator=torch.Generator().manual_seed(1)))


def _seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return module.eval()


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(x + self.block(x))
        return out


class Doubling(nn.Module):
    def __init__(self, in_place: bool) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 4), nn.Linear(4, 2)
        self.in_place = in_place

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.first(x)
        hidden = hidden.mul_(2) if self.in_place else hidden * 2
        out: torch.Tensor = self.second(hidden)
        return out


class Branching(nn.Module):
    """Takes another layer when the input sums to more than 1: a data-dependent path."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.large = nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.large(x) if float(x.sum()) > 1 else self.small(x)
        return out


class Reshaping(nn.Module):
    """Flattens with ``view`` inside ``forward`` instead of an ``nn.Flatten``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(2 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.conv(x).view(len(x), -1))
        return out


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


# ---------------------------------------------------------------- layer bounds


def test_linear_bound_is_its_largest_singular_value() -> None:
    layer = _seeded(nn.Linear(50, 30))
    exact = float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2))
    bound = lipschitz_bound(layer, (50,))
    assert exact <= bound <= exact * (1 + 1e-4)


CONVS = {
    "plain": (nn.Conv2d(1, 8, 3, padding=1), (1, 8, 8)),
    "strided": (nn.Conv2d(4, 6, 3, stride=2, padding=1), (4, 9, 9)),
    "dilated-grouped": (nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), (4, 7, 7)),
    "same-even-kernel": (nn.Conv2d(3, 5, 2, padding="same"), (3, 6, 6)),
    "valid-5x5": (nn.Conv2d(2, 3, 5), (2, 6, 6)),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_bound_is_its_operator_norm(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    layer, shape = CONVS[case]
    layer = _seeded(layer)
    exact = _operator_norm(layer, shape)
    bound = lipschitz_bound(layer, shape)
    assert exact <= bound <= exact * (1 + 1e-4)
    # the circulant bound of large layers
    monkeypatch.setattr(layer_bounds_module, "EXACT_LIMIT", 0)
    (circulant,) = layer_bounds(layer, shape)
    assert circulant.method == "circulant bound"
    assert exact <= circulant.factor <= 2 * exact


POOLS = {
    "avg-2": (nn.AvgPool2d(2), 0.5),
    "avg-3-overlapping": (nn.AvgPool2d(3, stride=1, padding=1), None),
    "adaptive-avg": (nn.AdaptiveAvgPool2d(3), None),
}


@pytest.mark.parametrize("case", sorted(POOLS))
def test_average_pool_bound_is_its_operator_norm(case: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    layer, known = POOLS[case]
    exact = _operator_norm(layer, (2, 8, 8))
    assert known is None or exact == pytest.approx(known)
    assert exact <= lipschitz_bound(layer, (2, 8, 8)) <= exact * (1 + 1e-4)
    monkeypatch.setattr(layer_bounds_module, "EXACT_LIMIT", 0)  # the Schur bound of large inputs
    assert exact <= lipschitz_bound(layer, (2, 8, 8)) <= 1.5 * exact


@pytest.mark.parametrize(("layer", "expected"), [
    (nn.MaxPool2d(2), 1.0), (nn.MaxPool2d(3, stride=1), 3.0), (nn.MaxPool2d(3, stride=2), 2.0),
])
def test_max_pool_bound_counts_overlapping_windows(layer: nn.Module, expected: float) -> None:
    assert lipschitz_bound(layer, (2, 8, 8)) == pytest.approx(expected)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, 8, 8, generator=generator)
    x_other = x + 0.01 * torch.randn(x.shape, generator=generator)
    ratios = (layer(x) - layer(x_other)).flatten(1).norm(dim=1) / (x - x_other).flatten(1).norm(
        dim=1)
    assert float(ratios.max()) <= expected


def test_batch_norm_and_normalized_scale_by_their_largest_factor() -> None:
    norm = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        norm.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
        norm.weight.copy_(torch.tensor([1.0, -3.0, 1.0]))
    assert lipschitz_bound(norm, (3, 4, 4)) == pytest.approx(3 / math.sqrt(1 + norm.eps))
    wrapped = Normalized(nn.Flatten(), mean=[0.5, 0.5], std=[0.25, 0.5])
    assert lipschitz_bound(wrapped, (2, 4, 4)) == pytest.approx(4.0)


# ---------------------------------------------------------------- whole networks


NETWORKS = {
    "digits-cnn": lambda: _seeded(DigitsCNN()),
    "normalized-spectral": lambda: Normalized(
        SpectralNormalization().transform_model(_seeded(DigitsCNN())), [0.5], [0.3]).eval(),
    "mixed": lambda: _seeded(nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(0.1), nn.AvgPool2d(2),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(inplace=True), nn.ELU(), nn.Tanh(),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(32, 16), nn.Sigmoid(), nn.Linear(16, 10))),
}


@pytest.mark.parametrize("case", sorted(NETWORKS))
def test_network_bound_dominates_empirical_lipschitz_constants(case: str) -> None:
    network = NETWORKS[case]()
    bound = lipschitz_bound(network, DIGITS)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(256, *DIGITS, generator=generator)
    with torch.no_grad():
        for scale in (1e-3, 0.1, 1.0):
            x_other = x + scale * torch.randn(x.shape, generator=generator)
            ratios = ((network(x) - network(x_other)).norm(dim=1)
                      / (x - x_other).flatten(1).norm(dim=1))
            assert float(ratios.max()) <= bound
    double = copy.deepcopy(network).double()
    local = max(_jacobian_norm(double, point) for point in x[:16])
    assert 0 < local <= bound


def test_chain_may_reshape_with_view_in_forward() -> None:
    network = _seeded(Reshaping())
    kinds = [bound.kind for bound in layer_bounds(network, DIGITS)]
    assert kinds == ["Conv2d", "Linear"]
    assert lipschitz_bound(network, DIGITS) >= _operator_norm(network, DIGITS)


@pytest.mark.parametrize(("network", "shape", "message"), [
    (Residual(), (4,), "plain chain"),
    (Doubling(in_place=False), (4,), "plain chain"),
    (Doubling(in_place=True), (4,), "plain chain"),
    (Branching(), (4,), "different layers"),
    (nn.Sequential(nn.Linear(4, 4), nn.GELU()), (4,), "type GELU"),
    (nn.Sequential(nn.Linear(4, 4), Square()), (4,), "type Square"),
    (nn.MaxPool2d(2, return_indices=True), (1, 4, 4), "one tensor"),
    (nn.BatchNorm2d(1, track_running_stats=False), (1, 4, 4), "running statistics"),
    (nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 4, 4), "padding_mode"),
    (nn.Conv2d(3, 1, 3), (1, 4, 4), "fails on an input of shape"),
])
def test_network_outside_the_contract_is_refused(network: nn.Module, shape: tuple[int, ...],
                                                 message: str) -> None:
    with pytest.raises(DefenseError, match=message):
        lipschitz_bound(network, shape)


def test_a_hook_that_changes_an_output_is_refused() -> None:
    network = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    network[0].register_forward_hook(lambda module, args, output: output * 10)
    with pytest.raises(DefenseError, match="plain chain"):
        lipschitz_bound(network, (4,))


def test_bound_leaves_the_network_as_it_was() -> None:
    network = SpectralNormalization().transform_model(DigitsCNN()).train()
    network.features.eval()
    modes = [m.training for m in network.modules()]
    state = {key: value.clone() for key, value in network.state_dict().items()}
    lipschitz_bound(network, DIGITS)
    assert [m.training for m in network.modules()] == modes
    for key, value in network.state_dict().items():
        assert torch.equal(value, state[key]), key


# ---------------------------------------------------------------- radii and accuracy


def test_radius_of_a_linear_classifier_is_its_exact_distance_to_the_boundary() -> None:
    """For logits ``(w.x + b, -(w.x + b))`` the Lipschitz bound is ``sqrt(2) |w|`` and the
    margin ``2 |w.x + b|``: the certified radius is the exact distance to the boundary, which
    DeepFool (exact on a linear model, up to its 2% overshoot) finds."""
    w = torch.randn(64, generator=torch.Generator().manual_seed(0))
    network = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        network[1].weight.copy_(torch.stack([w, -w]))
        network[1].bias.copy_(torch.tensor([-0.3, 0.3]))
    x = torch.rand(100, *DIGITS, generator=torch.Generator().manual_seed(1))
    score = x.flatten(1) @ w - 0.3
    y = (score < 0).long()
    y[:10] = 1 - y[:10]  # ten misclassified samples
    radii = certified_radii(network, x, y, lipschitz_bound(network, DIGITS))
    assert torch.equal(radii[:10], torch.zeros(10, dtype=radii.dtype))
    assert torch.allclose(radii[10:], (score.abs() / w.norm()).double()[10:], rtol=1e-4)
    goal = Misclassification(y[10:])
    x_min = DeepFool().find_minimal(network, x[10:], goal, Norm.L2, torch.Generator())
    distances = MinimumNormAttack.distances(network, x[10:], x_min, goal, Norm.L2)
    found = distances.isfinite()
    assert float(found.double().mean()) >= 0.9
    ratios = distances[found] / radii[10:][found]
    assert float(ratios.min()) >= 1 and float(ratios.median()) <= 1.03


def test_certified_accuracy_counts_radii_strictly_above_eps() -> None:
    radii = torch.tensor([0.0, 0.1, 0.25, 0.3])
    assert certified_accuracy(radii, [0, 0.1, 0.25, 1]) == {0.0: 0.75, 0.1: 0.5, 0.25: 0.25,
                                                            1.0: 0.0}
    with pytest.raises(DefenseError, match="eps"):
        certified_accuracy(radii, [-0.1])
    with pytest.raises(DefenseError, match="at least one"):
        certified_accuracy(torch.empty(0), [0.1])
    with pytest.raises(DefenseError, match="finite"):
        certified_radii(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long),
                        math.nan)


# ---------------------------------------------------------------- the defense


def test_spectral_normalization_wraps_every_conv_and_linear() -> None:
    defense = SpectralNormalization(n_power_iterations=3)
    assert defense.name == "spectral-norm" and defense.transforms_model
    assert not defense.perturbs and not defense.owns_loss
    assert repr(defense) == "SpectralNormalization(n_power_iterations=3)"
    network = defense.transform_model(DigitsCNN())
    wrapped = [name for name, m in network.named_modules() if parametrize.is_parametrized(m)]
    assert wrapped == ["features.0", "features.2", "features.5", "classifier.1",
                       "classifier.3"]
    network.train()
    with torch.no_grad():
        for _ in range(200):  # power iterations converge during training forwards
            network(torch.rand(8, *DIGITS))
    network.eval()
    for name in ("classifier.1", "classifier.3"):
        weight = network.get_submodule(name).weight.detach()
        assert float(torch.linalg.matrix_norm(weight, ord=2)) == pytest.approx(1, abs=5e-3)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_spectral_normalization_validates_its_parameter(value: object) -> None:
    with pytest.raises(DefenseError, match="n_power_iterations"):
        SpectralNormalization(n_power_iterations=value)  # type: ignore[arg-type]


def test_spectral_normalization_needs_a_layer() -> None:
    with pytest.raises(DefenseError, match="no Linear or Conv"):
        SpectralNormalization().transform_model(nn.Sequential(nn.ReLU()))


# ---------------------------------------------------------------- soundness (trained model)

EPS_VALUES = (0.1, 0.25, 0.5, 1.0)


def train_spectral_cnn(seed: int = 0, epochs: int = 20) -> nn.Module:
    """`DigitsCNN` with spectral normalisation, trained with Adam on the digits train split."""
    data = digits_train()
    with deterministic_torch(seed):
        module = SpectralNormalization().transform_model(DigitsCNN())
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(module.parameters(), lr=3e-3)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
        module.train()
        for _ in range(epochs):
            order = torch.randperm(len(data.x), generator=generator)
            for start in range(0, len(order), 64):
                batch = order[start:start + 64]
                loss = nn.functional.cross_entropy(module(data.x[batch]), data.y[batch])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
            schedule.step()
    return module.eval()


@pytest.fixture(scope="module")
def certified(digits_test: EvalData) -> tuple[RobustModel, float, torch.Tensor]:
    """The trained model, its Lipschitz bound and the test digits' certified radii."""
    module = train_spectral_cnn()
    bound = lipschitz_bound(module, DIGITS)
    return robust_model(module, "digits-cnn spectral-norm"), bound, certified_radii(
        module, digits_test.x, digits_test.y, bound)


@pytest.mark.slow
def test_spectral_normalization_certifies_a_small_radius(
        digits_test: EvalData, certified: tuple[RobustModel, float, torch.Tensor]) -> None:
    model, bound, radii = certified
    clean = float((model.predict(digits_test.x) == digits_test.y).float().mean())
    accuracy = certified_accuracy(radii, (0.0, *EPS_VALUES))
    assert clean >= 0.9
    assert accuracy[0.0] == pytest.approx(clean)
    assert accuracy[0.1] >= 0.3
    assert 1 < bound < 100


@pytest.mark.slow
def test_no_attack_breaks_a_certified_sample(
        digits_test: EvalData, certified: tuple[RobustModel, float, torch.Tensor]) -> None:
    model, _, radii = certified
    keep = radii > 0.1
    x, y, radius = digits_test.x[keep], digits_test.y[keep], radii[keep].float()
    # PGD at 0.999 x a radius within 10% below each sample's own (samples grouped by level).
    levels = torch.floor(torch.log(radius) / math.log(1.1))
    pgd = PGD(steps=50, rel_step_size=0.05, restarts=2)
    for level in levels.unique():
        group = levels == level
        threat = ThreatModel(Norm.L2, 0.999 * 1.1 ** float(level))
        outcome = attack_batch(pgd, model, x[group], y[group], threat, seed=0)
        assert bool(outcome.valid.all())
        assert bool(outcome.correct.all())
    # Minimum-norm attacks: every adversarial example they find lies beyond the radius, and
    # they are strong enough to find one within a few radii (an unsound bound would show).
    generator = torch.Generator().manual_seed(0)
    for attack in (DeepFool(), CarliniWagnerL2(binary_search_steps=3, steps=100,
                                              learning_rate=0.05, initial_const=1.0)):
        x_min = attack.find_minimal(model, x, Misclassification(y), Norm.L2, generator)
        distances = MinimumNormAttack.distances(model, x, x_min, Misclassification(y),
                                                Norm.L2).float()
        assert bool((distances >= radius).all()), attack
        assert float(distances.isfinite().float().mean()) >= 0.95
        assert float((distances / radius).median()) < 10
