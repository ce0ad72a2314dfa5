"""GAN training: losses and R1 by their definitions, PGD inside its balls, the bundled GAN's
quality, deterministic training that resumes to the same weights, and ``robust train-gan``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import GanError
from robustbench_lite.gan.adversary import latent_pgd, pixel_pgd
from robustbench_lite.gan.files import load_gan
from robustbench_lite.gan.losses import discriminator_loss, generator_loss, r1_penalty
from robustbench_lite.gan.networks import DigitsGanConfig, make_digits_gan
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import (
    FeatureExtractor,
    default_features,
    digits_features,
    frechet_distance,
    kernel_distance,
    measure_quality,
)
from robustbench_lite.gan.training import train_gan
from robustbench_lite.gan.training_config import AdversarialConfig, GanTrainingConfig
from robustbench_lite.semantic.measure import load_shape_classifier
from tests.cli_runner import invoke

SMALL = DigitsGanConfig(z_dim=4, w_dim=8, mapping_hidden=8, mapping_depth=2, channels_4x4=8,
                        channels_8x8=8, discriminator_channels=4)


@pytest.fixture(scope="module")
def bundled() -> GanPair:
    return load_gan()


@pytest.fixture(scope="module")
def features() -> FeatureExtractor:
    return digits_features()


# ---------------------------------------------------------------- losses


def test_r1_penalty_of_a_linear_discriminator_is_half_gamma_squared_weight_norm() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 1)
    discriminator = nn.Sequential(nn.Flatten(), linear)
    penalty = r1_penalty(discriminator, torch.rand(5, 1, 8, 8), gamma=3.0)
    assert torch.allclose(penalty, 1.5 * linear.weight.square().sum())
    penalty.backward()  # type: ignore[no-untyped-call]
    assert linear.weight.grad is not None
    assert torch.allclose(linear.weight.grad, 3.0 * linear.weight)
    assert float(r1_penalty(discriminator, torch.rand(2, 1, 8, 8), gamma=0.0)) == 0.0


def test_losses_are_the_non_saturating_logistic_loss() -> None:
    real, fake = torch.tensor([[1.0], [-2.0]]), torch.tensor([0.5, 3.0])
    expected = functional.softplus(-real).mean() + functional.softplus(fake).mean()
    assert torch.allclose(discriminator_loss(real, fake), expected)
    smoothed = discriminator_loss(real, fake, real_target=0.9)
    assert torch.allclose(smoothed, (0.9 * functional.softplus(-real)
                                     + 0.1 * functional.softplus(real)).mean()
                          + functional.softplus(fake).mean())
    assert torch.allclose(generator_loss(fake), functional.softplus(-fake).mean())


def test_frechet_and_kernel_distance_are_zero_for_one_sample_and_grow_apart() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=generator).double().numpy()
    b = (torch.randn(400, 6, generator=generator) + 2.0).double().numpy()
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, b) == pytest.approx(24.0, rel=0.2)  # |mean shift|^2 = 6 * 4
    near, _ = kernel_distance(a, a[::-1].copy(), subsets=5)
    far, _ = kernel_distance(a, b, subsets=5)
    assert abs(near) < 1e-3 * far  # the same points: no distance beside a shifted set
    assert default_features((3, 8, 8)) is None


# ---------------------------------------------------------------- the bundled GAN


def test_bundled_gan_makes_digits_far_better_than_an_untrained_generator(
        bundled: GanPair, features: FeatureExtractor, digits_test: EvalData) -> None:
    trained = measure_quality(bundled, digits_test.x, generated=1000, seed=0,
                              features=features)
    untrained = measure_quality(GanPair(*make_digits_gan(seed=0), "untrained", "", "module"),
                                digits_test.x, generated=1000, seed=0, features=features)
    assert trained.fd * 5 <= untrained.fd
    assert trained.kid < untrained.kid
    assert trained.feature_extractor == "digits-cnn penultimate layer (128-d)"
    assert 0.2 < trained.d_real_accuracy < 0.95 and 0.2 < trained.d_fake_accuracy < 0.95
    _, images = bundled.sample(500, seed=1)
    confidence = load_shape_classifier()(images).softmax(dim=1).amax(dim=1)
    assert float((confidence > 0.9).float().mean()) > 0.75


def test_latent_pgd_stays_in_its_ball_and_raises_realness(bundled: GanPair) -> None:
    z = torch.randn((32, bundled.z_dim), generator=torch.Generator().manual_seed(0))
    bundled.discriminator.train()
    with torch.no_grad():
        before = bundled.realness(bundled.generate(z))
    moved = latent_pgd(bundled, z, space="z", norm="linf", eps=0.25, steps=5)
    assert float((moved - z).abs().max()) <= 0.25 + 1e-6
    with torch.no_grad():
        assert bool((bundled.realness(bundled.generate(moved)) >= before - 1e-6).all())
        assert float(bundled.realness(bundled.generate(moved)).mean()) > float(before.mean())
    assert bundled.discriminator.training and not bundled.generator.training
    assert all(p.grad is None for p in bundled.discriminator.parameters())
    bundled.discriminator.eval()

    spread = bundled.latent_spread(seed=0)
    w = latent_pgd(bundled, z, space="w", norm="l2", eps=0.5, steps=5, spread=spread)
    with torch.no_grad():
        start = bundled.generator.mapping(z)
    assert float(((w - start) / spread[1]).norm(dim=1).max()) <= 0.5 + 1e-5
    with pytest.raises(GanError, match="'z' or 'w'"):
        latent_pgd(bundled, z, space="x", norm="linf", eps=0.1, steps=1)  # type: ignore[arg-type]


def test_pixel_pgd_stays_in_the_box_and_moves_realness_both_ways(
        bundled: GanPair, digits_test: EvalData) -> None:
    x = digits_test.x[:32]
    with torch.no_grad():
        before = bundled.realness(x)
    for raise_realness, sign in ((True, 1.0), (False, -1.0)):
        moved = pixel_pgd(bundled.discriminator, x, raise_realness=raise_realness,
                          norm="linf", eps=0.05, steps=5, random_start=True,
                          generator=torch.Generator().manual_seed(0))
        assert float((moved - x).abs().max()) <= 0.05 + 1e-6
        assert float(moved.min()) >= 0.0 and float(moved.max()) <= 1.0
        with torch.no_grad():
            assert sign * float((bundled.realness(moved) - before).mean()) > 0


# ---------------------------------------------------------------- training


def tiny_data(digits_test: EvalData) -> tuple[Tensor, Tensor]:
    return digits_test.x[:96], digits_test.x[96:160]


def short_run(digits_test: EvalData, features: FeatureExtractor, epochs: int,
              checkpoint_dir: Path | None = None, resume: bool = False,
              seed: int = 0) -> tuple[nn.Module, nn.Module, list[float | None]]:
    generator, discriminator = make_digits_gan(SMALL, seed=0)
    train, test = tiny_data(digits_test)
    config = GanTrainingConfig(epochs=epochs, batch_size=32, quality_samples=64, seed=seed)
    adversarial = AdversarialConfig(spaces=("latent-z", "latent-w", "pixel"), mix=0.5,
                                    steps=2, curriculum_epochs=2, train_generator=True)
    result = train_gan(generator, discriminator, train, test, config, adversarial,
                       features=features, checkpoint_dir=checkpoint_dir, resume=resume,
                       show_progress=False)
    assert [record.epoch for record in result.records] == list(range(1, epochs + 1))
    assert '"records"' in result.to_json()
    return generator, discriminator, [record.fd for record in result.records]


def same_weights(first: nn.Module, second: nn.Module) -> bool:
    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[key], two[key]) for key in one)


def test_training_is_deterministic_and_resume_equals_an_uninterrupted_run(
        tmp_path: Path, digits_test: EvalData, features: FeatureExtractor) -> None:
    generator, discriminator, fds = short_run(digits_test, features, epochs=2)
    again = short_run(digits_test, features, epochs=2)
    assert same_weights(generator, again[0]) and same_weights(discriminator, again[1])
    assert fds == again[2] and all(fd is not None and math.isfinite(fd) for fd in fds)

    short_run(digits_test, features, epochs=1, checkpoint_dir=tmp_path)
    resumed = short_run(digits_test, features, epochs=2, checkpoint_dir=tmp_path,
                        resume=True)
    assert same_weights(generator, resumed[0]) and same_weights(discriminator, resumed[1])
    assert resumed[2] == fds

    with pytest.raises(GanError, match="belongs to a run with other settings"):
        short_run(digits_test, features, epochs=2, checkpoint_dir=tmp_path, resume=True,
                  seed=1)


def test_training_without_features_and_bad_settings(digits_test: EvalData) -> None:
    generator, discriminator = make_digits_gan(SMALL, seed=0)
    train, test = tiny_data(digits_test)
    result = train_gan(generator, discriminator, train, test,
                       GanTrainingConfig(epochs=1, batch_size=48),
                       AdversarialConfig(train_generator=False), features=None,
                       show_progress=False)
    assert result.records[0].fd is None and result.records[0].g_loss is None
    with pytest.raises(GanError, match="mix"):
        AdversarialConfig(mix=0.0)
    with pytest.raises(GanError, match="spaces"):
        AdversarialConfig(spaces=("latent-q",))
    with pytest.raises(GanError, match="epochs"):
        GanTrainingConfig(epochs=0)


@pytest.mark.usefixtures("isolated_cli")
def test_train_gan_command_writes_a_loadable_file_with_quality_metadata() -> None:
    result = invoke("train-gan", "--epochs", "1", "--batch-size", "128", "--seed", "3",
                    "--quiet", "--out", "quick.safetensors")
    assert result.exit_code == 0, result.output
    assert "FD" in result.stdout and "Saved:" in result.stdout
    pair = load_gan(combined=Path("quick.safetensors"))
    metadata = pair.metadata
    assert metadata["seed"] == "3" and metadata["epochs"] == "1"
    assert metadata["test_feature_extractor"] == "digits-cnn penultimate layer (128-d)"
    for key in ("test_fd", "test_kid", "test_d_accuracy", "training_seconds"):
        assert math.isfinite(float(metadata[key])), key
    assert pair.sample(2, seed=0)[1].shape == (2, 1, 8, 8)
