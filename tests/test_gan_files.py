"""GAN files: safetensors and TorchScript round trips, the bundled default, and one-line
errors for files that are not GANs or do not match their declared architecture."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from robustbench_lite.errors import GanError
from robustbench_lite.gan.files import DEFAULT_GAN, load_gan, save_gan, save_pair
from robustbench_lite.gan.networks import (
    DigitsDiscriminator,
    DigitsGanConfig,
    DigitsGenerator,
    make_digits_gan,
)
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.models.robust_model import file_sha256

SMALL = DigitsGanConfig(z_dim=4, w_dim=8, mapping_hidden=8, mapping_depth=2, channels_4x4=8,
                        channels_8x8=8, discriminator_channels=4)


class PlainGenerator(nn.Module):
    """A generator without a mapping network (TorchScript-able)."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 3
        self.linear = nn.Linear(3, 64)

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.linear(z)).view(-1, 1, 8, 8)


class PlainDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.linear(x.flatten(1))
        return out


class Unscriptable(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.new_tensor([len(str(x.__class__))])  # str() of a class: not TorchScript


def same_outputs(first: GanPair, second: GanPair) -> bool:
    z = torch.randn((5, first.z_dim), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = first.generate(z)
        return torch.equal(images, second.generate(z)) and torch.equal(
            first.realness(images), second.realness(images))


def pair_of(generator: nn.Module, discriminator: nn.Module) -> GanPair:
    return GanPair(generator, discriminator, "made", "", "module")


@pytest.fixture
def small_pair() -> GanPair:
    return pair_of(*make_digits_gan(SMALL, seed=3))


def one_line_error(**files: Path) -> str:
    with pytest.raises(GanError) as caught:
        load_gan(**files)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bundled_gan_loads_by_default() -> None:
    pair = load_gan()
    assert isinstance(pair.generator, DigitsGenerator)
    assert isinstance(pair.discriminator, DigitsDiscriminator)
    assert pair.format == "safetensors" and pair.name == "digits_gan"
    assert pair.sha256 == hashlib.sha256(file_sha256(DEFAULT_GAN).encode()).hexdigest()
    assert pair.metadata["format"] == "robustbench-lite-gan"
    assert float(pair.metadata["test_fd"]) > 0
    assert not pair.generator.training and not pair.discriminator.training
    assert all(p.requires_grad for p in pair.generator.parameters())
    assert pair.has_mapping
    _, images = pair.sample(4, seed=0)
    assert images.shape == (4, 1, 8, 8)


def test_combined_round_trip(tmp_path: Path, small_pair: GanPair) -> None:
    path = tmp_path / "both.safetensors"
    save_gan(path, small_pair.generator, small_pair.discriminator, {"note": "hello"})
    loaded = load_gan(combined=path)
    assert same_outputs(small_pair, loaded)
    assert loaded.metadata["note"] == "hello"
    assert loaded.metadata["generator"] == "digits-gan-generator"
    assert json.loads(loaded.metadata["config"])["z_dim"] == SMALL.z_dim
    assert loaded.format == "safetensors" and loaded.name == "both"
    assert set(load_file(str(path))) == (
        {f"generator.{key}" for key in small_pair.generator.state_dict()}
        | {f"discriminator.{key}" for key in small_pair.discriminator.state_dict()})


def test_two_files_and_a_combined_file_completed(tmp_path: Path,
                                                  small_pair: GanPair) -> None:
    g_path, d_path = tmp_path / "g.safetensors", tmp_path / "d.safetensors"
    save_gan(g_path, generator=small_pair.generator)
    save_gan(d_path, discriminator=small_pair.discriminator)
    loaded = load_gan(generator=g_path, discriminator=d_path)
    assert same_outputs(small_pair, loaded)
    assert loaded.name == "g+d"
    assert loaded.sha256 == hashlib.sha256(
        f"{file_sha256(g_path)}\n{file_sha256(d_path)}".encode()).hexdigest()
    assert same_outputs(small_pair, load_gan(combined=g_path, discriminator=d_path))
    assert "twice" in one_line_error(combined=DEFAULT_GAN, generator=g_path)
    assert "no discriminator" in one_line_error(combined=g_path)
    assert "holds no generator" in one_line_error(generator=d_path, discriminator=d_path)


def test_save_pair_writes_safetensors_for_digits_networks(tmp_path: Path,
                                                          small_pair: GanPair) -> None:
    written = save_pair(small_pair, tmp_path, {"origin": "test"})
    assert written == [tmp_path / "gan.safetensors"]
    loaded = load_gan(combined=written[0])
    assert same_outputs(small_pair, loaded) and loaded.metadata["origin"] == "test"


def test_torchscript_pair_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pair = pair_of(PlainGenerator(), PlainDiscriminator())
    written = save_pair(pair, tmp_path, {"origin": "test"})
    assert written == [tmp_path / "generator.pt", tmp_path / "discriminator.pt"]
    loaded = load_gan(generator=written[0], discriminator=written[1])
    assert loaded.format == "torchscript" and loaded.z_dim == 3
    assert not loaded.has_mapping
    assert loaded.metadata["origin"] == "test"
    assert same_outputs(pair, loaded)


def test_scripted_digits_generator_keeps_mapping_and_mixes_with_safetensors(
        tmp_path: Path, small_pair: GanPair) -> None:
    g_path, d_path = tmp_path / "g.pt", tmp_path / "d.safetensors"
    torch.jit.save(torch.jit.script(small_pair.generator), str(g_path))
    save_gan(d_path, discriminator=small_pair.discriminator)
    loaded = load_gan(generator=g_path, discriminator=d_path)
    assert loaded.format == "mixed" and loaded.has_mapping
    assert same_outputs(small_pair, loaded)
    z = torch.randn(2, SMALL.z_dim)
    with torch.no_grad():
        assert torch.allclose(loaded.generator.synthesis(loaded.generator.mapping(z)),
                              small_pair.generator(z))


def test_unscriptable_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GanError, match=r"torch\.jit\.script failed"):
        save_pair(pair_of(PlainGenerator(), Unscriptable()), tmp_path)


def test_save_gan_refuses_foreign_modules(tmp_path: Path) -> None:
    with pytest.raises(GanError, match="save_pair"):
        save_gan(tmp_path / "x.safetensors", generator=PlainGenerator())
    with pytest.raises(GanError, match="neither"):
        save_gan(tmp_path / "x.safetensors")


def rewrite(source: Path, target: Path, *, metadata: dict[str, str] | None = None,
            tensors: dict[str, Tensor] | None = None) -> Path:
    """A copy of ``source`` with some metadata entries or all tensors replaced."""
    with safe_open(str(source), framework="pt") as handle:
        header = dict(handle.metadata())
    save_file(load_file(str(source)) if tensors is None else tensors, str(target),
              metadata={**header, **(metadata or {})})
    return target


def test_bad_files_give_one_line_errors(tmp_path: Path, small_pair: GanPair) -> None:
    good = tmp_path / "good.safetensors"
    save_gan(good, small_pair.generator, small_pair.discriminator)
    tensors = load_file(str(good))

    assert "not found" in one_line_error(combined=tmp_path / "missing.safetensors")
    (tmp_path / "junk.bin").write_bytes(b"not a model at all")
    assert "neither TorchScript" in one_line_error(combined=tmp_path / "junk.bin")
    save_file(tensors, str(tmp_path / "plain.safetensors"))
    assert "not a GAN file" in one_line_error(combined=tmp_path / "plain.safetensors")

    cases: dict[str, dict[str, Any]] = {
        "unknown generator architecture": {"metadata": {"generator": "big-gan"}},
        "malformed 'config'": {"metadata": {"config": json.dumps({"z_dim": 5000})}},
        "version": {"metadata": {"version": "9"}},
        "does not match": {"metadata": {"config": DigitsGanConfig().to_json()}},
        "NaN": {"tensors": {**tensors, "generator.constant":
                            torch.full_like(tensors["generator.constant"], float("nan"))}},
        "no declared role": {"tensors": {**tensors, "encoder.weight": torch.zeros(2)}},
    }
    for expected, change in cases.items():
        path = rewrite(good, tmp_path / "bad.safetensors", **change)
        assert expected in one_line_error(combined=path), expected

    torch.save({"weights": torch.zeros(2)}, tmp_path / "checkpoint.pt")
    assert "not TorchScript" in one_line_error(generator=tmp_path / "checkpoint.pt",
                                               discriminator=good)
    no_z = tmp_path / "no_z.pt"
    torch.jit.save(torch.jit.script(PlainDiscriminator()), str(no_z))
    assert "z_dim" in one_line_error(generator=no_z, discriminator=good)
    assert "holds one module" in one_line_error(combined=no_z)
