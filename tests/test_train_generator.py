"""``robust train-generator`` on a reduced size: deterministic under a seed, writes a loadable
file with its metadata; bad generator files give one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.cli import cli
from robustbench_lite.errors import GeneratorError, UnknownGeneratorError
from robustbench_lite.semantic import load_generator
from robustbench_lite.semantic.stylegan import DEFAULT_WEIGHTS, ColourDigitsGenerator

QUICK = ["--steps", "3", "--batch-size", "8", "--quiet"]


def train(tmp_path: Path, name: str, *options: str) -> tuple[Path, str]:
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["train-generator", *QUICK, "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("generators")
    return {name: train(tmp_path, f"{name}.safetensors", "--seed", seed)[0]
            for name, seed in (("first", "7"), ("again", "7"), ("other", "8"))}


def test_same_seed_same_weights_other_seed_other_weights(trained: dict[str, Path]) -> None:
    first, again, other = (load_file(str(trained[name])) for name in ("first", "again", "other"))
    assert first.keys() == again.keys()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_written_file_loads_and_records_config_and_measurements(
        trained: dict[str, Path], catalogue: Catalogue) -> None:
    generator = load_generator(trained["first"], catalogue)
    assert isinstance(generator, ColourDigitsGenerator)
    metadata = generator.metadata
    assert metadata["generator"] == "colour-digits"
    assert metadata["train_seed"] == "7" and metadata["train_steps"] == "3"
    assert metadata["dataset"] == "colour-digits"
    assert json.loads(metadata["config"])["z_dim"] == generator.z_dim
    for key in ("test_reconstruction_mse", "test_label_preservation", "test_colour_change"):
        assert 0 <= float(metadata[key]) < 10, key
    assert float(metadata["training_seconds"]) > 0
    images = generator.synthesise(generator.sample_styles(2, torch.Generator().manual_seed(0)))
    assert images.shape == (2, 3, 8, 8)


def test_output_reports_the_measurements(tmp_path: Path) -> None:
    out, output = train(tmp_path, "nested/dir/gen.safetensors")
    assert out.is_file()
    assert "reconstruction MSE" in output and "keeps the digit in" in output
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left nothing behind


def test_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["train-generator", "--help"])
    assert result.exit_code == 0
    assert "robust train-generator --out" in result.output


def test_bundled_file_was_made_with_the_defaults() -> None:
    from robustbench_lite.semantic.train_generator import GeneratorTrainingConfig

    metadata = ColourDigitsGenerator.load(None).metadata
    assert {key: metadata[key] for key in GeneratorTrainingConfig().as_metadata()} == (
        GeneratorTrainingConfig().as_metadata())


# ---------------------------------------------------------------- bad generator files


def bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.safetensors"
    good = load_file(str(DEFAULT_WEIGHTS))
    if kind == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "no-metadata":
        save_file(good, str(path))
    elif kind == "wrong-tensors":
        good.pop(next(iter(good)))
        metadata = ColourDigitsGenerator.load(None).metadata
        save_file(good, str(path), metadata=metadata)
    elif kind == "bad-config":
        save_file(good, str(path), metadata={"generator": "colour-digits", "config": "{oops"})
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("garbage", "is not a readable safetensors file"),
    ("empty", "is not a readable safetensors file"),
    ("no-metadata", "has no 'generator' metadata"),
    ("wrong-tensors", "does not match the 'colour-digits' generator's architecture"),
    ("bad-config", "malformed 'config' metadata"),
])
def test_bad_generator_file_is_one_line(tmp_path: Path, catalogue: Catalogue, kind: str,
                                        message: str) -> None:
    path = bad_file(tmp_path, kind)
    with pytest.raises(GeneratorError, match=message) as info:
        load_generator(path, catalogue)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_generator_kind_and_missing_file(tmp_path: Path, catalogue: Catalogue) -> None:
    path = tmp_path / "alien.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"generator": "stylegan9"})
    with pytest.raises(UnknownGeneratorError, match="unknown generator 'stylegan9'; choose one "
                                                    "of: colour-digits"):
        load_generator(path, catalogue)
    with pytest.raises(GeneratorError, match="generator file not found"):
        load_generator(f"colour-digits:{tmp_path / 'missing.safetensors'}", catalogue)
