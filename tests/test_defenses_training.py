"""Adversarial training (fgsm-at, fast-at, pgd-at, trades) and label smoothing: parameter
checks, perturbations inside the threat model, the losses against hand-written formulas,
the curriculum, the composition rules, and one fine-tuning run that must harden the default
digits CNN."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional
from trap_models import _pgd_linf, digits_train

from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.adversarial import (
    ADVERSARIAL_DEFENSES,
    FGSMAT,
    PGDAT,
    TRADES,
    FastAT,
)
from robustbench_lite.defenses.base import Defense, TrainingStep, compose
from robustbench_lite.defenses.smoothing import LabelSmoothing
from robustbench_lite.errors import DefenseError
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.tasks.classification.objectives import Misclassification
from robustbench_lite.threat import Norm, ThreatModel
from robustbench_lite.training.loop import deterministic_torch

#: A radius per norm for the perturbation tests (L2 0.5 on 8x8 digits is about Linf 0.06).
RADII = {"linf": 0.1, "l2": 0.5}


@pytest.fixture
def frozen(default_model: RobustModel) -> nn.Module:
    """The default CNN as `Recipe.step_loss` hands it to ``perturb``: evaluation mode,
    parameters frozen."""
    return default_model.module


@pytest.fixture
def trainable(default_model: RobustModel) -> nn.Module:
    """A copy of the default CNN whose parameters can be trained."""
    module = copy.deepcopy(default_model.module)
    module.requires_grad_(True)
    return module


@pytest.fixture
def batch(digits_test: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
    return digits_test.x[:64], digits_test.y[:64]


def make_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
              progress: float = 1.0, seed: int = 0) -> TrainingStep:
    x, y = batch
    return TrainingStep(model=model, x=x, y=y, num_classes=10, progress=progress,
                        generator=torch.Generator().manual_seed(seed))


def mean_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(functional.cross_entropy(model(x), y))


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(("cls", "kwargs", "parameter"), [
    (FGSMAT, {"alpha": 1.5}, "alpha"),
    (FGSMAT, {"alpha": -0.1}, "alpha"),
    (FastAT, {"step_ratio": 0}, "step_ratio"),
    (PGDAT, {"steps": 0}, "steps"),
    (PGDAT, {"steps": 2.5}, "steps"),
    (PGDAT, {"random_start": "yes"}, "random_start"),
    (PGDAT, {"norm": "l1"}, "norm"),
    (PGDAT, {"norm": "chebyshev"}, "norm"),
    (PGDAT, {"eps": 0}, "eps"),
    (PGDAT, {"eps": "1/0"}, "eps"),
    (PGDAT, {"eps": 1.5}, "eps"),
    (PGDAT, {"norm": "l2", "eps": -1.0}, "eps"),
    (FastAT, {"eps": math.nan}, "eps"),
    (FastAT, {"curriculum": 1.0}, "curriculum"),
    (TRADES, {"curriculum": -0.1}, "curriculum"),
    (TRADES, {"beta": 0}, "beta"),
    (TRADES, {"steps": True}, "steps"),
    (LabelSmoothing, {"smoothing": 0}, "smoothing"),
    (LabelSmoothing, {"smoothing": 1}, "smoothing"),
    (LabelSmoothing, {"smoothing": math.nan}, "smoothing"),
])
def test_invalid_parameter_is_one_line_naming_defense_and_parameter(
        cls: type[Defense], kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(DefenseError) as caught:
        cls(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert f"`defense` {cls.name}:" in message
    assert f"{parameter} must be" in message


def test_parameters_are_normalised_and_shown_in_repr() -> None:
    defense = PGDAT(norm="L2", eps=1.5, steps=3)
    assert defense.params == {"norm": "l2", "eps": 1.5, "steps": 3, "step_ratio": 2.5,
                              "random_start": True, "curriculum": 0.0}
    assert repr(defense).startswith("PGDAT(norm='l2', eps=1.5, steps=3")
    assert LabelSmoothing().params == {"smoothing": 0.1}


def test_norm_enum_and_fraction_eps_are_accepted() -> None:
    """What ``--defense pgd-at:norm=l2,eps=8/255`` and library callers pass."""
    assert PGDAT(norm=Norm.L2).norm is Norm.L2
    assert FastAT(eps="8/255").eps == pytest.approx(8 / 255)  # type: ignore[arg-type]
    with pytest.raises(DefenseError, match="eps must be"):
        FastAT(eps="a lot")  # type: ignore[arg-type]


def test_names_and_seams() -> None:
    assert [d.name for d in ADVERSARIAL_DEFENSES] == ["fgsm-at", "fast-at", "pgd-at", "trades"]
    for cls in ADVERSARIAL_DEFENSES:
        assert cls().perturbs
    assert FGSMAT().owns_loss and TRADES().owns_loss
    assert not PGDAT().owns_loss and not FastAT().owns_loss
    smoothing = LabelSmoothing()
    assert smoothing.owns_loss and not smoothing.perturbs and not smoothing.transforms_model


# ---------------------------------------------------------------- perturbations


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("cls", ADVERSARIAL_DEFENSES, ids=lambda c: c.name)
def test_perturbation_inside_threat_deterministic_and_harmful(
        cls: type[Defense], norm: str, frozen: nn.Module,
        batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    eps = RADII[norm]
    defense = cls(norm=norm, eps=eps)  # type: ignore[call-arg]
    x, y = batch
    x_adv = defense.perturb(make_step(frozen, batch))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert bool(ThreatModel(Norm.parse(norm), eps).contains(x_adv, x).all())
    assert torch.equal(x_adv, defense.perturb(make_step(frozen, batch)))
    if cls is not FGSMAT:  # the only one without randomness
        assert not torch.equal(x_adv, defense.perturb(make_step(frozen, batch, seed=1)))
    assert mean_ce(frozen, x_adv, y) > mean_ce(frozen, x, y) + 0.1


def test_perturb_leaves_no_parameter_gradients(
        trainable: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    PGDAT(steps=2).perturb(make_step(trainable, batch))
    assert all(p.grad is None for p in trainable.parameters())


def test_pgd_at_matches_a_reference_linf_pgd(
        frozen: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The tests' own Linf PGD (uniform start, steps of 2.5 eps / steps) finds the same
    points."""
    x, y = batch
    ours = PGDAT(steps=5).perturb(make_step(frozen, batch))
    reference = _pgd_linf(frozen, x, y, 0.1, 5, torch.Generator().manual_seed(0))
    assert torch.allclose(ours, reference, atol=1e-6)


# ---------------------------------------------------------------- losses


def test_fgsm_at_loss_mixes_clean_and_adversarial_cross_entropy(
        trainable: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    loss = compose([FGSMAT(alpha=0.3)]).step_loss(make_step(trainable, batch))
    trainable.requires_grad_(False)
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(functional.cross_entropy(trainable(x_req), y), x_req)
    x_adv = (x + 0.1 * grad.sign()).clamp(0, 1)
    expected = (0.3 * functional.cross_entropy(trainable(x), y)
                + 0.7 * functional.cross_entropy(trainable(x_adv), y))
    assert loss.requires_grad
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_trades_loss_is_cross_entropy_plus_beta_kl(
        trainable: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    defense = TRADES(beta=4.0)
    loss = compose([defense]).step_loss(make_step(trainable, batch))
    trainable.requires_grad_(False)
    x_adv = defense.perturb(make_step(trainable, batch))
    with torch.no_grad():
        p = functional.softmax(trainable(x), dim=1)
        q = functional.softmax(trainable(x_adv), dim=1)
        kl = (p * (p.log() - q.log())).sum(dim=1).mean()
        expected = functional.cross_entropy(trainable(x), y) + 4.0 * kl
    assert float(kl) > 0
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-4)


def test_label_smoothing_loss_is_cross_entropy_with_smoothed_targets(
        trainable: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    loss = compose([LabelSmoothing(smoothing=0.2)]).step_loss(make_step(trainable, batch))
    with torch.no_grad():
        targets = 0.8 * functional.one_hot(y, 10) + 0.2 / 10
        expected = -(targets * functional.log_softmax(trainable(x), dim=1)).sum(dim=1).mean()
        torch_value = functional.cross_entropy(trainable(x), y, label_smoothing=0.2)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(torch_value), rel=1e-6)


def test_a_two_logit_objective_refuses_a_single_batch(
        trainable: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    step = make_step(trainable, batch)
    with pytest.raises(DefenseError, match="fgsm-at"):
        FGSMAT().loss(step, trainable(step.x), None)


# ---------------------------------------------------------------- curriculum


def test_curriculum_ramps_eps_from_a_tenth(frozen: nn.Module,
                                           batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    defense = PGDAT(curriculum=0.5)
    assert defense.epsilon(0.0) == pytest.approx(0.01)
    assert defense.epsilon(0.25) == pytest.approx(0.055)
    assert defense.epsilon(0.5) == pytest.approx(0.1)
    assert defense.epsilon(0.9) == pytest.approx(0.1)
    assert PGDAT().epsilon(0.0) == 0.1
    x, _ = batch
    early = defense.perturb(make_step(frozen, batch, progress=0.0))
    assert float(ThreatModel(Norm.LINF, 0.1).distances(early, x).max()) <= 0.01 + 1e-6
    late = defense.perturb(make_step(frozen, batch, progress=0.6))
    assert float(ThreatModel(Norm.LINF, 0.1).distances(late, x).max()) > 0.09


@pytest.mark.parametrize("cls", ADVERSARIAL_DEFENSES, ids=lambda c: c.name)
def test_every_adversarial_defense_has_the_curriculum(cls: type[Defense]) -> None:
    defense = cls(curriculum=0.2)  # type: ignore[call-arg]
    assert defense.params["curriculum"] == 0.2
    assert defense.epsilon(0.0) == pytest.approx(0.01)  # type: ignore[attr-defined]
    assert defense.epsilon(0.2) == pytest.approx(0.1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- composition


def test_pgd_at_with_label_smoothing_trains_on_smoothed_adversarial_loss(
        trainable: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, y = batch
    recipe = compose([PGDAT(), LabelSmoothing()])
    loss = recipe.step_loss(make_step(trainable, batch))
    trainable.requires_grad_(False)
    x_adv = PGDAT().perturb(make_step(trainable, batch))
    expected = functional.cross_entropy(trainable(x_adv), y, label_smoothing=0.1)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_fast_at_composes_with_label_smoothing() -> None:
    recipe = compose([FastAT(), LabelSmoothing()])
    assert isinstance(recipe.perturber, FastAT)
    assert isinstance(recipe.objective, LabelSmoothing)


@pytest.mark.parametrize(("first", "second"), [
    (PGDAT(), TRADES()),
    (FastAT(), FGSMAT()),
    (FGSMAT(), LabelSmoothing()),
    (TRADES(), LabelSmoothing()),
])
def test_conflicting_defenses_are_refused_naming_both(first: Defense, second: Defense) -> None:
    with pytest.raises(DefenseError) as caught:
        compose([first, second])
    assert first.name in str(caught.value) and second.name in str(caught.value)


# ---------------------------------------------------------------- hardening works


def _robust_and_clean(module: nn.Module, x: torch.Tensor,
                      y: torch.Tensor) -> tuple[float, float]:
    module.eval().requires_grad_(False)
    x_adv = PGD(steps=10).run(module, x, Misclassification(y), ThreatModel(Norm.LINF, 0.1),
                              torch.Generator().manual_seed(0))
    with torch.no_grad():
        robust = float((module(x_adv).argmax(1) == y).float().mean())
        clean = float((module(x).argmax(1) == y).float().mean())
    return robust, clean


@pytest.mark.slow
def test_pgd_at_fine_tuning_hardens_the_default_model(
        default_model: RobustModel, digits_test: EvalData) -> None:
    """Three epochs of PGD training (AdamW, lr 1e-3) on the train split. Measured: PGD-10
    robust accuracy at Linf 0.1 on the first 200 test digits 63% -> 78%, clean 98% -> 98%,
    about 4 s of training."""
    x, y = digits_test.x[:200], digits_test.y[:200]
    robust_before, clean_before = _robust_and_clean(copy.deepcopy(default_model.module), x, y)
    train = digits_train()
    recipe = compose([PGDAT()])
    epochs, batch_size = 3, 64
    batches = math.ceil(len(train.x) / batch_size)
    started = time.perf_counter()
    with deterministic_torch(0):
        module = copy.deepcopy(default_model.module).requires_grad_(True)
        generator = torch.Generator().manual_seed(0)
        optimiser = torch.optim.AdamW(module.parameters(), lr=1e-3)
        for epoch in range(epochs):
            order = torch.randperm(len(train.x), generator=generator)
            for index in range(batches):
                chosen = order[index * batch_size:(index + 1) * batch_size]
                progress = (epoch * batches + index) / (epochs * batches - 1)
                module.train()
                loss = recipe.step_loss(TrainingStep(module, train.x[chosen], train.y[chosen],
                                                     10, progress, generator))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
    seconds = time.perf_counter() - started
    robust_after, clean_after = _robust_and_clean(module, x, y)
    print(f"pgd-at 3 epochs in {seconds:.1f} s: robust {robust_before:.3f} -> "
          f"{robust_after:.3f}, clean {clean_before:.3f} -> {clean_after:.3f}")
    assert robust_after >= robust_before + 0.10
    assert clean_after >= clean_before - 0.05
