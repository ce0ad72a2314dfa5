"""The defenses that wrap or distil the classifier: ``input-transform``, ``distillation`` and
``denoiser``: parameter checks, what each wrapper computes, a short harden run per defense
whose saved model loads and audits as the wrapped model, and what the audit's checks say."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.nn import functional
from trap_models import _pgd_linf, default_digits_module, digits_train

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.base import Defense, DefenseContext, TrainingStep, compose
from robustbench_lite.defenses.denoiser import Denoiser
from robustbench_lite.defenses.distillation import DefensiveDistillation
from robustbench_lite.defenses.input_transform import InputTransform
from robustbench_lite.defenses.preprocessing import (
    BitDepth,
    JpegLike,
    Preprocessed,
    ResizePad,
    dct_basis,
)
from robustbench_lite.defenses.spec import build_recipe
from robustbench_lite.defenses.unet import Denoised, UNet
from robustbench_lite.errors import DefenseError
from robustbench_lite.hardening import harden
from robustbench_lite.training.harden import CHECKPOINT, Hardener, HardenSettings
from robustbench_lite.training.loop import deterministic_torch


def checks(outcome_checks: list[object]) -> dict[str, str]:
    return {check.name: check.status for check in outcome_checks}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(("spec", "message"), [
    ("input-transform", "needs kind: one or more of bit-depth, jpeg, resize-pad, noise"),
    ("input-transform:kind=blur", "unknown kind 'blur'"),
    ("input-transform:kind=jpeg+jpeg", "names a transformation twice"),
    ("input-transform:kind=jpeg,bits=3", "bits sets kind bit-depth, which kind 'jpeg' does"),
    ("input-transform:kind=bit-depth,bits=0", "bits must be an integer from 1 to 8, got 0"),
    ("input-transform:kind=bit-depth,bits=2.5", "bits must be an integer"),
    ("input-transform:kind=jpeg,quality=101", "quality must be an integer from 1 to 100"),
    ("input-transform:kind=resize-pad,max_scale=1", "max_scale must be a number with 1 <"),
    ("input-transform:kind=noise,sigma=-1", "sigma must be a number with 0 < sigma <= 1"),
    ("distillation:temperature=1", "temperature must be a number with 1 < temperature"),
    ("distillation:temperature=big", "temperature must be a number"),
    ("denoiser:loss=l2", "loss must be one of hgd, pixel, got 'l2'"),
    ("denoiser:freeze_classifier=1", "freeze_classifier must be true or false"),
    ("denoiser:eps=2", "eps must be a number with 0 < eps <= 1"),
    ("denoiser:steps=0", "steps must be an integer >= 1"),
    ("denoiser:width=0", "width must be an integer >= 1"),
])
def test_bad_parameters_are_one_error_line(catalogue: Catalogue, spec: str,
                                           message: str) -> None:
    with pytest.raises(DefenseError, match=None) as error:
        build_recipe([spec], catalogue)
    text = str(error.value)
    assert message in text and "\n" not in text, text


def test_specs_build_and_show_their_parameters(catalogue: Catalogue) -> None:
    recipe = build_recipe(["input-transform:kind=bit-depth+noise,bits=2"], catalogue)
    assert recipe.defenses[0].params == {"kind": "bit-depth+noise", "bits": 2, "sigma": 0.1}
    (distil,) = build_recipe(["distillation"], catalogue).defenses
    assert distil.params == {"temperature": 100.0} and distil.owns_loss
    (denoise,) = build_recipe(["denoiser:loss=pixel"], catalogue).defenses
    assert denoise.perturbs and denoise.owns_loss and denoise.transforms_model
    assert denoise.params["loss"] == "pixel" and denoise.params["eps"] == 0.1
    rebuilt = type(recipe.defenses[0])(**recipe.defenses[0].params)
    assert repr(rebuilt) == repr(recipe.defenses[0])


# ---------------------------------------------------------------- what the wrappers compute


def test_bit_depth_keeps_two_to_the_bits_levels() -> None:
    x = torch.rand(4, 3, 16, 16)
    for bits in (1, 3, 5):
        out = BitDepth(bits)(x)
        assert out.unique().numel() == 2 ** bits
        assert (out - x).abs().max() <= 0.5 / (2 ** bits - 1) + 1e-6
    assert torch.equal(BitDepth(1)(torch.tensor([-0.5, 0.4, 0.6, 1.7])),
                       torch.tensor([0.0, 0.0, 1.0, 1.0]))


def _high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    basis = dct_basis()
    coefficients = basis @ (x - 0.5) @ basis.T
    mask = torch.arange(8)[:, None] + torch.arange(8)[None, :] >= 8
    return (coefficients[..., mask] ** 2).sum()


def test_jpeg_like_is_near_identity_at_100_and_drops_high_frequencies_at_low_quality() -> None:
    x = digits_train().x[:64]
    assert (JpegLike(100)(x) - x).abs().max() < 0.01
    low = JpegLike(10)(x)
    assert low.shape == x.shape and low.min() >= 0 and low.max() <= 1
    assert _high_frequency_energy(low) < 0.5 * _high_frequency_energy(x)
    texture = 0.5 + 0.2 * (torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
                           - 0.5)  # no clamping: the quantised coefficients show directly
    assert _high_frequency_energy(JpegLike(10)(texture)) < 1e-3 * _high_frequency_energy(
        texture)
    assert _high_frequency_energy(JpegLike(95)(texture)) > 0.5 * _high_frequency_energy(
        texture)
    odd = torch.rand(2, 3, 11, 13)  # edge-padded to whole blocks, cropped back
    assert JpegLike(100)(odd).shape == odd.shape
    assert (JpegLike(100)(odd) - odd).abs().max() < 0.02


def test_resize_pad_keeps_the_shape_and_is_random_between_calls() -> None:
    x = digits_train().x[:32]
    layer = ResizePad(1.25)
    first, second = layer(x), layer(x)
    assert first.shape == x.shape and not torch.equal(first, second)
    assert first.min() >= 0 and first.max() <= 1 + 1e-6
    colour = torch.rand(2, 3, 32, 32)
    assert ResizePad(1.1)(colour).shape == colour.shape
    # at scale 1 (size = canvas) the image comes back unchanged: check one such draw exists
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(layer(x).sum(), x)
    assert grad.abs().sum() > 0  # differentiable: only the randomness masks gradients


def test_input_transform_wraps_in_front_and_keeps_the_model(catalogue: Catalogue) -> None:
    net = default_digits_module()
    (defense,) = build_recipe(["input-transform:kind=jpeg+bit-depth,bits=4"],
                              catalogue).defenses
    wrapped = defense.transform_model(net)
    assert isinstance(wrapped, Preprocessed) and wrapped.model is net
    assert [type(step).__name__ for step in wrapped.steps] == ["JpegLike", "BitDepth"]
    x = digits_train().x[:16]
    assert torch.equal(wrapped(x), net(BitDepth(4)(JpegLike(75)(x))))


def test_unet_keeps_the_shape_starts_as_identity_and_has_skip_connections() -> None:
    for shape in ((2, 1, 8, 8), (2, 3, 32, 32), (1, 3, 7, 9)):
        x = torch.rand(shape)
        unet = UNet(shape[1], width=4)
        assert unet(x).shape == x.shape
        assert torch.equal(unet(x), x)  # the correction starts at zero
    unet = UNet(1, width=4)
    seen: dict[str, int] = {}
    for name in ("decode1", "decode2"):
        getattr(unet, name).register_forward_hook(
            lambda module, args, out, name=name: seen.__setitem__(name, args[0].shape[1]))
    unet(torch.rand(1, 1, 8, 8))
    # each decoder level takes its upsampled input concatenated with the encoder's skip
    assert seen == {"decode1": 4 + 4, "decode2": 8 + 8}


def test_denoised_freezes_the_classifier_but_trains_the_denoiser() -> None:
    train = digits_train()
    net = default_digits_module()
    before = copy.deepcopy(net.state_dict())
    defense = Denoiser(steps=2)
    defense.prepare(DefenseContext(None, train, torch.device("cpu")))  # type: ignore[arg-type]
    model = defense.transform_model(net)
    assert isinstance(model, Denoised) and model.classifier is net
    recipe = compose([defense])
    model.requires_grad_(True)  # as the training loop does
    model.train()
    assert not net.training  # frozen: the classifier stays in evaluation mode
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    step = TrainingStep(model, train.x[:32], train.y[:32], 10, 0.0,
                        torch.Generator().manual_seed(0))
    loss = recipe.step_loss(step)
    loss.backward()  # type: ignore[no-untyped-call]
    assert all(p.grad is None for p in net.parameters())
    assert model.denoiser.correction.weight.grad is not None  # type: ignore[union-attr]
    optimiser.step()
    assert all(torch.equal(net.state_dict()[k], before[k]) for k in before)
    model.eval()
    assert model(train.x[:4]).shape == (4, 10)


def test_denoiser_losses_match_their_formulas() -> None:
    train = digits_train()
    x, y = train.x[:16], train.y[:16]
    for loss, freeze in (("hgd", True), ("pixel", True), ("hgd", False)):
        defense = Denoiser(loss=loss, freeze_classifier=freeze, steps=1)
        model = defense.transform_model(default_digits_module())
        assert isinstance(model, Denoised)
        step = TrainingStep(model, x, y, 10, 0.0, torch.Generator().manual_seed(0))
        value = compose([defense]).step_loss(step)
        x_adv = defense._adversarial
        assert x_adv is not None and (x_adv - x).abs().max() <= 0.1 + 1e-6
        with torch.no_grad():
            if loss == "pixel":
                expected = functional.l1_loss(model.denoiser(x_adv), x)
            else:
                expected = functional.l1_loss(model(x_adv), model.classifier(x))
            if not freeze:
                expected = expected + functional.cross_entropy(model(x_adv), y)
        assert torch.allclose(value, expected, atol=1e-6)


def test_distillation_trains_on_the_teachers_labels_at_temperature() -> None:
    train = digits_train()
    net = default_digits_module()
    defense = DefensiveDistillation(temperature=20)
    defense.prepare(DefenseContext(None, train, torch.device("cpu")))  # type: ignore[arg-type]
    assert defense.transform_model(net) is net  # the student is the starting model
    assert defense.teacher is not None and defense.teacher is not net
    assert not any(p.requires_grad for p in defense.teacher.parameters())
    x, y = train.x[:32], train.y[:32]
    student = torch.randn(32, 10, requires_grad=True)
    loss = defense.loss(TrainingStep(net, x, y, 10, 0.0, torch.Generator()), student, None)
    with torch.no_grad():
        soft = functional.softmax(net(x), dim=1)
    expected = -(soft * functional.log_softmax(student / 20, dim=1)).sum(1).mean()
    assert torch.allclose(loss, expected)
    # its minimum: the student's logits at T match the teacher's probabilities, that is,
    # logits T times the teacher's (up to a constant per sample)
    with torch.no_grad():
        scaled = 20 * net(x)
    at_optimum = defense.loss(TrainingStep(net, x, y, 10, 0.0, torch.Generator()), scaled,
                              None)
    assert torch.allclose(at_optimum, -(soft * soft.clamp_min(1e-30).log()).sum(1).mean(),
                          atol=1e-4)


def test_distillation_refuses_an_untrained_teacher() -> None:
    defense = DefensiveDistillation()
    defense.prepare(DefenseContext(None, digits_train(),  # type: ignore[arg-type]
                                   torch.device("cpu")))
    with deterministic_torch(0):
        fresh = type(default_digits_module())()
    with pytest.raises(DefenseError, match="start from a trained model"):
        defense.transform_model(fresh)


# ---------------------------------------------------------------- harden end to end


def _harden(tmp_path: Path, spec: str, epochs: int = 1, **extra: object) -> object:
    return harden(None, None, defenses=[spec], out=tmp_path, matrix="quick", n_samples=30,
                  settings=HardenSettings(epochs=epochs, validation_fraction=0.05),
                  **extra)  # type: ignore[arg-type]


def _reload_wrapped(tmp_path: Path, defense: Defense) -> torch.nn.Module:
    """The trained wrapped module rebuilt in memory from the run's checkpoint."""
    module = defense.transform_model(default_digits_module())
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    module.load_state_dict(state["model"])
    return module.eval()


def test_bit_depth_hardens_saves_the_wrapper_and_the_audit_flags_it(tmp_path: Path) -> None:
    outcome = _harden(tmp_path, "input-transform:kind=bit-depth,bits=3")
    assert not (tmp_path / "model.safetensors").exists()  # would load without the wrapper
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    wrapped = _reload_wrapped(tmp_path, InputTransform(kind="bit-depth", bits=3))
    x = digits_train().x[:100]
    assert torch.equal(loaded(x).argmax(1), wrapped(x).argmax(1))
    assert torch.allclose(loaded(x), wrapped(x), atol=1e-5)
    after = outcome.after  # type: ignore[attr-defined]
    # audited as the trained Python module, so BPDA reaches inside the rounding
    assert after.model.format == "python module (saved as model.pt)"
    status = checks(after.checks)
    assert status["input gradients"] == "fail"
    assert status["differentiable preprocessing"] == "fail"
    cells = {cell.attack: cell.accuracy for cell in after.cells if cell.eps == 0.1}
    worst = next(row.accuracy for row in after.robust_accuracy if row.eps == 0.1)
    assert cells["pgd"] > 0.9  # the naive attack sees no gradient
    assert worst < cells["pgd"] - 0.2 and cells["pgd+bpda"] == min(cells.values())


@pytest.mark.slow
def test_resize_pad_stays_random_in_the_saved_model(tmp_path: Path) -> None:
    outcome = _harden(tmp_path, "input-transform:kind=resize-pad")
    assert not (tmp_path / "model.safetensors").exists()
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    x = digits_train().x[:50]
    assert not torch.equal(loaded(x), loaded(x))
    assert checks(outcome.after.checks)["deterministic model"] == "warn"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_distillation_saves_the_student_and_the_audit_rescales(tmp_path: Path) -> None:
    outcome = _harden(tmp_path, "distillation", epochs=4)
    assert (tmp_path / "model.safetensors").is_file()  # the student: the plain architecture
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    x = digits_train().x[:100]
    before = default_digits_module()(x)
    # the student's logits grew with the temperature: the softmax saturates
    assert loaded(x).std(dim=1).mean() > 5 * before.std(dim=1).mean()
    after = outcome.after  # type: ignore[attr-defined]
    gradient = next(c for c in after.checks if c.name == "input gradients")
    assert gradient.status in ("warn", "fail") and "rescaled logits" in gradient.message
    assert any(cell.attack.endswith("+rescaled") for cell in after.cells)


@pytest.mark.slow
def test_denoiser_hardens_end_to_end_and_saves_the_wrapper(tmp_path: Path) -> None:
    outcome = _harden(tmp_path, "denoiser:steps=2,width=8")
    assert not (tmp_path / "model.safetensors").exists()
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    wrapped = _reload_wrapped(tmp_path, Denoiser(steps=2, width=8))
    x = digits_train().x[:100]
    assert torch.allclose(loaded(x), wrapped(x), atol=1e-5)
    # the frozen classifier is the bundled one, bit for bit
    assert isinstance(wrapped, Denoised)
    bundled = default_digits_module().state_dict()
    assert all(torch.equal(wrapped.classifier.state_dict()[k], v) for k, v in bundled.items())
    after = outcome.after  # type: ignore[attr-defined]
    assert after.clean_accuracy >= outcome.before.clean_accuracy - 0.05  # type: ignore[attr-defined]
    assert checks(after.checks)["input gradients"] == "pass"


@pytest.mark.slow
def test_hgd_denoiser_raises_pgd_accuracy_over_the_undefended_model(
        digits_test: EvalData) -> None:
    """What a user relies on: a denoiser trained with the HGD loss for a few epochs makes the
    model more robust to white-box PGD (20 steps, through the whole denoised model) at the
    digits Linf eps 0.1 than the bundled model. Measured on the 450 test digits: 62.0% ->
    69.6% after 8 epochs at lr 1e-2 (about 2.5 minutes on a 2-core CPU); clean 98.2% ->
    98.4%."""
    train = digits_train()
    defense = Denoiser(loss="hgd")
    defense.prepare(DefenseContext(None, train, torch.device("cpu")))  # type: ignore[arg-type]
    module = defense.transform_model(default_digits_module())
    defended = Hardener(module, compose([defense]), train,
                        HardenSettings(epochs=8, learning_rate=1e-2), None, "test").run(
                            show_progress=False)
    x, y = digits_test.x, digits_test.y

    def accuracy(model: torch.nn.Module) -> tuple[float, float]:
        x_adv = _pgd_linf(model, x, y, 0.1, 20, torch.Generator().manual_seed(0))
        with torch.no_grad():
            return (float((model(x_adv).argmax(1) == y).float().mean()),
                    float((model(x).argmax(1) == y).float().mean()))

    bare_pgd, bare_clean = accuracy(default_digits_module())
    pgd, clean = accuracy(defended)
    assert pgd >= bare_pgd + 0.05, (bare_pgd, pgd)
    assert clean >= bare_clean - 0.01, (bare_clean, clean)
