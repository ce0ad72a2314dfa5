"""The `StyleGenerator` interface, the bundled colour-digits generator and its measured split,
the StyleGAN2 wrapper, the ``register_generators`` hook and `load_generator`."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest
import torch

import robustbench_lite
from robustbench_lite.catalogue import Catalogue, build_catalogue
from robustbench_lite.data.colour_digits import ColourDigitsSource
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.errors import GeneratorError, PluginError
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.semantic import WrappedStyleGenerator, load_generator
from robustbench_lite.semantic.measure import (
    GeneratorQuality,
    colour_of,
    measure_generator,
    shape_image,
)
from robustbench_lite.semantic.stylegan import (
    DEFAULT_WEIGHTS,
    ColourDigitsGenerator,
    MiniStyleGAN,
    MiniStyleGANConfig,
)

# Thresholds the bundled generator must meet on the test split (its measured values are in
# its metadata and in docs/semantic.md).
MAX_RECONSTRUCTION_MSE = 0.02
MIN_LABEL_PRESERVATION = 0.90
MIN_COLOUR_CHANGE = 0.6
MAX_COLOUR_ERROR = 0.25


@pytest.fixture(scope="module")
def bundled(request: pytest.FixtureRequest) -> ColourDigitsGenerator:
    catalogue = build_catalogue(get_plugin_manager(load_entrypoints=False))
    generator = load_generator(None, catalogue)
    assert isinstance(generator, ColourDigitsGenerator)
    return generator


@pytest.fixture(scope="module")
def test_split() -> EvalData:
    return ColourDigitsSource().load(None, "test")


@pytest.fixture(scope="module")
def quality(bundled: ColourDigitsGenerator, test_split: EvalData) -> GeneratorQuality:
    return measure_generator(bundled, test_split)


# ---------------------------------------------------------------- interface contracts


def test_shapes(bundled: ColourDigitsGenerator, test_split: EvalData) -> None:
    g = bundled
    assert sorted(g.coarse_layers + g.fine_layers) == list(range(g.num_layers))
    w = g.map(torch.randn(5, g.z_dim))
    assert w.shape == (5, g.style_dim)
    styles = g.broadcast(w)
    assert styles.shape == (5, g.num_layers, g.style_dim)
    assert all(torch.equal(styles[:, i], w) for i in range(g.num_layers))
    images = g.synthesise(styles)
    assert images.shape == (5, *g.image_shape)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert g.encode(test_split.x[:7]).shape == (7, g.num_layers, g.style_dim)


def test_mix_takes_coarse_layers_from_the_first_and_fine_from_the_second(
        bundled: ColourDigitsGenerator) -> None:
    g = bundled
    first = torch.zeros(3, g.num_layers, g.style_dim)
    second = torch.ones(3, g.num_layers, g.style_dim)
    mixed = g.mix(first, second)
    for layer in g.coarse_layers:
        assert torch.equal(mixed[:, layer], first[:, layer])
    for layer in g.fine_layers:
        assert torch.equal(mixed[:, layer], second[:, layer])
    # one set of fine styles broadcasts over a batch
    assert g.mix(first, second[:1]).shape == first.shape


def test_wrongly_shaped_input_is_one_line(bundled: ColourDigitsGenerator) -> None:
    g = bundled
    for call in (lambda: g.mix(torch.zeros(2, g.num_layers, g.style_dim), torch.zeros(2, 5)),
                 lambda: g.synthesise(torch.zeros(2, g.style_dim)),
                 lambda: g.map(torch.zeros(2, g.z_dim + 1)),
                 lambda: g.encode(torch.zeros(2, 1, 8, 8)),
                 lambda: g.broadcast(torch.zeros(2, 3, g.style_dim))):
        with pytest.raises(GeneratorError) as info:
            call()
        assert "\n" not in str(info.value)


def test_differentiable_in_styles_and_z_with_frozen_parameters(
        bundled: ColourDigitsGenerator, test_split: EvalData) -> None:
    g = bundled
    parameters = list(g.module.parameters())
    assert parameters and not any(p.requires_grad for p in parameters)
    assert not g.module.training
    coarse = g.encode(test_split.x[:4])
    z = torch.randn(4, g.z_dim, requires_grad=True)
    images = g.synthesise(g.mix(coarse, g.broadcast(g.map(z))))
    images.sum().backward()  # type: ignore[no-untyped-call]
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    styles = g.encode(test_split.x[:4]).clone().requires_grad_(True)
    g.synthesise(styles).square().sum().backward()  # type: ignore[no-untyped-call]
    assert styles.grad is not None
    assert all(float(styles.grad[:, layer].abs().sum()) > 0 for layer in range(g.num_layers))
    assert all(p.grad is None for p in parameters)


def test_sample_styles_is_seeded(bundled: ColourDigitsGenerator) -> None:
    first = bundled.sample_styles(6, torch.Generator().manual_seed(3))
    again = bundled.sample_styles(6, torch.Generator().manual_seed(3))
    other = bundled.sample_styles(6, torch.Generator().manual_seed(4))
    assert first.shape == (6, bundled.num_layers, bundled.style_dim)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(test_split: EvalData) -> None:
    g = ColourDigitsGenerator.load(None).to("cuda")
    assert g.device.type == "cuda"
    styles = g.encode(test_split.x[:8].cuda())
    fine = g.sample_styles(8, torch.Generator().manual_seed(0))
    images = g.synthesise(g.mix(styles, fine))
    assert images.device.type == "cuda" and images.shape == (8, 3, 8, 8)
    cpu = ColourDigitsGenerator.load(None)
    expected = cpu.synthesise(cpu.mix(cpu.encode(test_split.x[:8]), fine.cpu()))
    assert torch.allclose(images.cpu(), expected, atol=1e-4)


# ---------------------------------------------------------------- the measured split


def test_bundled_generator_reconstructs_the_test_split(quality: GeneratorQuality) -> None:
    assert quality.samples == 450
    assert quality.reconstruction_mse < MAX_RECONSTRUCTION_MSE


def test_fine_mixing_keeps_the_digit_and_changes_the_colour(quality: GeneratorQuality) -> None:
    assert quality.label_preservation >= MIN_LABEL_PRESERVATION
    assert quality.colour_change > MIN_COLOUR_CHANGE
    assert quality.colour_error < MAX_COLOUR_ERROR


def test_random_fine_styles_keep_the_digit(bundled: ColourDigitsGenerator,
                                           test_split: EvalData) -> None:
    """RandMix's images: coarse styles of the data, fine styles of ``map(z)``."""
    from robustbench_lite.semantic.measure import load_shape_classifier

    x, y = test_split.x, test_split.y
    fine = bundled.sample_styles(len(x), torch.Generator().manual_seed(0))
    with torch.no_grad():
        mixed = bundled.synthesise(bundled.mix(bundled.encode(x), fine))
        kept = load_shape_classifier()(shape_image(mixed)).argmax(1) == y
    assert float(kept.float().mean()) >= MIN_LABEL_PRESERVATION
    assert float(colour_of(mixed).std(dim=0).mean()) > 0.1  # the colours vary


def test_an_untrained_generator_fails_the_thresholds(test_split: EvalData) -> None:
    torch.manual_seed(0)
    untrained = ColourDigitsGenerator(MiniStyleGAN(MiniStyleGANConfig()))
    quality = measure_generator(untrained, test_split.subset(100))
    assert quality.reconstruction_mse > MAX_RECONSTRUCTION_MSE
    assert quality.label_preservation < MIN_LABEL_PRESERVATION


def test_metadata_records_the_measurements(bundled: ColourDigitsGenerator,
                                           quality: GeneratorQuality) -> None:
    metadata = bundled.metadata
    assert metadata["generator"] == "colour-digits"
    assert metadata["train_seed"] == "0"
    stored = float(metadata["test_label_preservation"])
    assert stored == pytest.approx(quality.label_preservation, abs=1e-6)
    assert float(metadata["test_reconstruction_mse"]) == pytest.approx(
        quality.reconstruction_mse, rel=1e-3)
    assert DEFAULT_WEIGHTS.stat().st_size < 1_000_000


# ---------------------------------------------------------------- the StyleGAN2 wrapper


def wrap(g: ColourDigitsGenerator, **overrides: Any) -> WrappedStyleGenerator:
    arguments: dict[str, Any] = {
        "mapping": g.module.mapping, "synthesis": g.module.synthesis,
        "encoder": g.encode, "z_dim": g.z_dim, "style_dim": g.style_dim,
        "num_layers": g.num_layers, "coarse_layers": g.coarse_layers,
        "fine_layers": g.fine_layers, "image_shape": g.image_shape, "modules": [g.module]}
    return WrappedStyleGenerator(**{**arguments, **overrides})


def test_wrapper_behaves_like_the_wrapped_networks(bundled: ColourDigitsGenerator,
                                                   test_split: EvalData) -> None:
    wrapped = wrap(bundled)
    x = test_split.x[:5]
    assert torch.equal(wrapped.synthesise(wrapped.encode(x)),
                       bundled.synthesise(bundled.encode(x)))
    generator = torch.Generator().manual_seed(1)
    assert torch.equal(wrapped.sample_styles(3, generator),
                       bundled.sample_styles(3, torch.Generator().manual_seed(1)))
    assert wrapped.to("cpu") is wrapped and wrapped.device.type == "cpu"


def test_wrapper_checks_outputs_and_the_layer_split(bundled: ColourDigitsGenerator) -> None:
    broken = wrap(bundled, synthesis=lambda styles: torch.zeros(len(styles), 3, 4, 4))
    with pytest.raises(GeneratorError, match=r"wrapped synthesis returned \(2, 3, 4, 4\)"):
        broken.synthesise(torch.zeros(2, bundled.num_layers, bundled.style_dim))
    with pytest.raises(GeneratorError, match="must partition"):
        wrap(bundled, coarse_layers=(0, 1, 2), fine_layers=(2, 3))
    with pytest.raises(GeneratorError, match="cannot be opened from a file"):
        WrappedStyleGenerator.load(None)


# ---------------------------------------------------------------- the hook and loading


class ToyGenerator(WrappedStyleGenerator):
    name = "toy-generator"

    @classmethod
    def load(cls, path: Any) -> ToyGenerator:
        base = ColourDigitsGenerator.load(None)
        return cls(mapping=base.map, synthesis=base.synthesise, encoder=base.encode,
                   z_dim=base.z_dim, style_dim=base.style_dim, num_layers=base.num_layers,
                   coarse_layers=(0,), fine_layers=(1, 2, 3), image_shape=base.image_shape)


def plugin_registering(obj: object) -> types.ModuleType:
    module = types.ModuleType("toy_generator_plugin")

    def register_generators(register: Callable[[Any], None]) -> None:
        register(obj)

    module.register_generators = robustbench_lite.hookimpl(  # type: ignore[attr-defined]
        register_generators)
    return module


def test_register_generators_hook_adds_a_generator() -> None:
    manager = get_plugin_manager(load_entrypoints=False,
                                 extra_plugins=(plugin_registering(ToyGenerator),))
    catalogue = build_catalogue(manager)
    assert catalogue.generators.names() == ["colour-digits", "toy-generator"]
    assert catalogue.generators.plugin_of("toy-generator") == "toy_generator_plugin"
    loaded = load_generator("toy-generator", catalogue)
    assert isinstance(loaded, ToyGenerator) and loaded.coarse_layers == (0,)


@pytest.mark.parametrize("obj", [ColourDigitsGenerator.load, object])
def test_register_generators_rejects_a_non_generator(obj: object) -> None:
    manager = get_plugin_manager(load_entrypoints=False,
                                 extra_plugins=(plugin_registering(obj),))
    with pytest.raises(PluginError, match=r"'toy_generator_plugin' registered .* through "
                                          "register_generators"):
        build_catalogue(manager)


def test_load_generator_by_name_spec_and_path(catalogue: Catalogue) -> None:
    by_name = load_generator("colour-digits", catalogue)
    by_path = load_generator(DEFAULT_WEIGHTS, catalogue)
    by_spec = load_generator(f"colour-digits:{DEFAULT_WEIGHTS}", catalogue)
    z = torch.randn(2, by_name.z_dim)
    assert torch.equal(by_name.map(z), by_path.map(z))
    assert torch.equal(by_name.map(z), by_spec.map(z))
    with pytest.raises(GeneratorError, match=r"no generator named 'stylegan9'.*colour-digits"):
        load_generator("stylegan9", catalogue)
