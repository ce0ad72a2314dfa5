"""The ``colour-digits`` dataset: shapes, determinism, the colour shortcut of the train split and
the class-independent colours of the test split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.colour_digits import COLOUR_NOISE, PALETTE, ColourDigitsSource
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.errors import DatasetError
from robustbench_lite.semantic.measure import colour_of, shape_image


@pytest.fixture(scope="module")
def splits() -> dict[str, EvalData]:
    return {split: ColourDigitsSource().load(None, split) for split in ("train", "test")}


def nearest_palette_class(data: EvalData) -> torch.Tensor:
    """The class whose palette colour is nearest each image's foreground colour."""
    return torch.cdist(colour_of(data.x), torch.from_numpy(PALETTE)).argmin(dim=1)


def test_registered_and_shaped(catalogue: Catalogue, splits: dict[str, EvalData]) -> None:
    data = load_dataset("colour-digits", catalogue, "train")
    assert torch.equal(data.x, splits["train"].x)
    assert data.family == "colour-digits"
    digits = load_dataset("digits", catalogue, "train")
    for split, size in (("train", 1347), ("test", 450)):
        assert splits[split].x.shape == (size, 3, 8, 8)
        assert splits[split].num_classes == 10
    # the same images as digits, in the same order: the colour-free digit is digits' image
    assert torch.equal(splits["train"].y, digits.y)
    peaked = digits.x.flatten(1).amax(1) == 1
    assert torch.allclose(shape_image(splits["train"].x)[peaked], digits.x[peaked], atol=1e-6)


def test_background_is_black_and_pixels_are_grey_times_colour(
        splits: dict[str, EvalData]) -> None:
    for data in splits.values():
        x = data.x
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        background = x.amax(dim=1) == 0
        assert bool(background.any())
        # rank one in colour: every pixel is a multiple of the image's foreground colour
        rebuilt = shape_image(x) * colour_of(x)[:, :, None, None]
        peaked = x.amax(dim=1).flatten(1).amax(1) > 0
        assert torch.allclose(rebuilt[peaked], x[peaked], atol=1e-5)


def test_deterministic(splits: dict[str, EvalData]) -> None:
    for split, data in splits.items():
        again = ColourDigitsSource().load(None, split)
        assert data.sha256 == again.sha256


def test_train_colour_is_a_shortcut(splits: dict[str, EvalData]) -> None:
    train = splits["train"]
    assert float((nearest_palette_class(train) == train.y).float().mean()) == 1.0
    noise = colour_of(train.x) - torch.from_numpy(PALETTE)[train.y]
    assert 0 < float(noise.std()) < 2 * COLOUR_NOISE  # small per-sample noise, not none


def test_test_colours_are_independent_of_the_class(splits: dict[str, EvalData]) -> None:
    test = splits["test"]
    by_colour = nearest_palette_class(test)
    agreement = float((by_colour == test.y).float().mean())
    assert agreement < 0.2  # chance is 0.1; the train split gives 1.0
    counts = torch.bincount(by_colour, minlength=10)
    assert int(counts.min()) > 20  # every palette colour is used
    # colour and class look independent: a chi-square statistic of the contingency table
    table = np.zeros((10, 10))
    np.add.at(table, (test.y.numpy(), by_colour.numpy()), 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    assert chi2 < 130  # 81 degrees of freedom; p ~ 0.0005 at 130


def test_palette_is_well_separated() -> None:
    distances = torch.cdist(torch.from_numpy(PALETTE), torch.from_numpy(PALETTE))
    off_diagonal = distances[~torch.eye(10, dtype=torch.bool)]
    assert float(off_diagonal.min()) > 8 * COLOUR_NOISE  # ~5 times the noise norm


def test_unknown_split_is_one_line() -> None:
    with pytest.raises(DatasetError, match="unknown split 'validation'"):
        ColourDigitsSource().load(None, "validation")
