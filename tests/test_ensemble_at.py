"""Ensemble adversarial training: examples crafted on the static models as well as on the
trained one, opened the way ``robust audit`` opens files, and hardening against what a
static model's examples transfer."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional
from trap_models import default_digits_module, digits_train

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.cli import cli
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.defenses.base import DefenseContext, TrainingStep, compose
from robustbench_lite.defenses.ensemble import EnsembleAT
from robustbench_lite.errors import DefenseError
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.training.harden import Hardener, HardenSettings

EPS = 0.1


def fgsm(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Plain FGSM at Linf ``EPS``, written out independently of the defense."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(functional.cross_entropy(module(x), y, reduction="sum"), x)
    return (x + EPS * grad.sign()).clamp(0, 1).detach()


@pytest.fixture
def context(catalogue: Catalogue) -> DefenseContext:
    return DefenseContext(catalogue, digits_train(), torch.device("cpu"))


def write_static_models(folder: Path) -> tuple[Path, Path]:
    """The default CNN as a safetensors file naming its architecture and as TorchScript."""
    module = default_digits_module()
    tensors = folder / "static.safetensors"
    save_file(module.state_dict(), str(tensors), metadata={"architecture": "digits-cnn"})
    script = folder / "static.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, torch.zeros(1, 1, 8, 8)), str(script))
    return tensors, script


def test_static_models_open_like_audit_files(tmp_path: Path, context: DefenseContext) -> None:
    tensors, script = write_static_models(tmp_path)
    defense = EnsembleAT(models=f"{tensors}+{script}+digits-cnn")
    defense.prepare(context)
    assert len(defense.static) == 3
    assert all(not p.requires_grad for m in defense.static for p in m.parameters())
    assert f"models='{tensors}+{script}+digits-cnn'" in repr(defense)


@pytest.mark.parametrize(("models", "message"), [
    ("", "needs the static models to craft examples on: `defense` ensemble-at:models="),
    ("missing.pt", "cannot use the static model 'missing.pt'"),
])
def test_missing_static_models_are_one_line(models: str, message: str,
                                            context: DefenseContext) -> None:
    with pytest.raises(DefenseError, match=message) as caught:
        EnsembleAT(models=models).prepare(context)
    assert "\n" not in str(caught.value)


def test_unprepared_defense_says_so(digits_test: EvalData) -> None:
    step = TrainingStep(DigitsCNN(), digits_test.x[:4], digits_test.y[:4], 10, 0.0,
                        torch.Generator().manual_seed(0))
    with pytest.raises(DefenseError, match="was not prepared"):
        EnsembleAT(models="digits-cnn").perturb(step)


def test_each_batch_is_crafted_on_one_of_the_sources(context: DefenseContext,
                                                     digits_test: EvalData) -> None:
    """Every perturbed batch is FGSM on the trained model or on the static one, and both
    sources are used; the draws come from the step's generator (same seed, same picks)."""
    defense = EnsembleAT(models="digits-cnn")
    defense.prepare(context)
    trained = DigitsCNN().eval().requires_grad_(False)  # far from the static model
    x, y = digits_test.x[:32], digits_test.y[:32]
    on_trained, on_static = fgsm(trained, x, y), fgsm(defense.static[0], x, y)
    assert not torch.allclose(on_trained, on_static)

    def picks(seed: int) -> list[str]:
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for _ in range(12):
            out = defense.perturb(TrainingStep(trained, x, y, 10, 1.0, generator))
            assert (out - x).abs().max() <= EPS + 1e-6
            if torch.allclose(out, on_trained, atol=1e-6):
                chosen.append("trained")
            else:
                assert torch.allclose(out, on_static, atol=1e-6)
                chosen.append("static")
        return chosen

    first = picks(0)
    assert set(first) == {"trained", "static"}
    assert picks(0) == first


def test_loss_mixes_clean_and_adversarial(digits_test: EvalData) -> None:
    x, y = digits_test.x[:16], digits_test.y[:16]
    logits, adversarial = torch.randn(16, 10), torch.randn(16, 10)
    step = TrainingStep(DigitsCNN(), x, y, 10, 0.0, torch.Generator())
    expected = 0.3 * functional.cross_entropy(logits, y) \
        + 0.7 * functional.cross_entropy(adversarial, y)
    assert torch.allclose(EnsembleAT(alpha=0.3).loss(step, logits, adversarial), expected)


@pytest.mark.slow
def test_training_on_static_examples_resists_their_transfer(
        context: DefenseContext, digits_test: EvalData) -> None:
    """Fine-tune the default CNN with ensemble-at against a static copy of itself: FGSM
    examples crafted on the static model, which fool the starting model, no longer fool
    the trained one. Measured (4 epochs, about 3 s): 70.5% -> 82.5% of 200 test digits
    resist them, clean 98% -> 98%."""
    recipe = compose([EnsembleAT(models="digits-cnn")])
    recipe.prepare(context)
    start = default_digits_module()
    x, y = digits_test.x[:200], digits_test.y[:200]
    transferred = fgsm(recipe.defenses[0].static[0], x, y)  # type: ignore[attr-defined]

    def accuracy(module: nn.Module, inputs: torch.Tensor) -> float:
        with torch.no_grad():
            return float((module(inputs).argmax(1) == y).float().mean())

    settings = HardenSettings(epochs=4, learning_rate=1e-3, validation_fraction=0)
    trained = Hardener(copy.deepcopy(start), recipe, context.data, settings, None,
                       "default").run(show_progress=False)
    before, after = accuracy(start, transferred), accuracy(trained, transferred)
    print(f"transferred FGSM: {before:.3f} -> {after:.3f}; clean {accuracy(start, x):.3f} "
          f"-> {accuracy(trained, x):.3f}")
    assert after >= before + 0.08
    assert accuracy(trained, x) >= accuracy(start, x) - 0.03


def test_harden_command_with_static_model_file(tmp_path: Path) -> None:
    tensors, _ = write_static_models(tmp_path)
    out = tmp_path / "hardened"
    result = CliRunner().invoke(cli, [
        "harden", "--defense", f"ensemble-at:models={tensors}", "--epochs", "1",
        "--matrix", "quick", "--n-samples", "30", "--validation-fraction", "0", "-q",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and (out / "comparison.html").is_file()
    bad = CliRunner().invoke(cli, ["harden", "--defense", "ensemble-at:models=nope.pt",
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "cannot use the static model 'nope.pt'" in bad.stderr
    assert "Traceback" not in bad.output and not (tmp_path / "bad" / "before").exists()


def test_fingerprint_follows_the_static_model_files(tmp_path: Path,
                                                   context: DefenseContext) -> None:
    """A checkpoint must not resume against replaced static models: same parameters, other
    file contents, other fingerprint."""
    tensors, _ = write_static_models(tmp_path)
    first = EnsembleAT(models=str(tensors))
    first.prepare(context)
    save_file(DigitsCNN().state_dict(), str(tensors), metadata={"architecture": "digits-cnn"})
    second = EnsembleAT(models=str(tensors))
    second.prepare(context)
    assert repr(first) == repr(second)
    assert first.fingerprint() != second.fingerprint()
