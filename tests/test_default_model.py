"""The bundled default model: accurate, and reproducible by the project's own command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from robustbench_lite.cli import cli
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.training.loop import TrainingRecipe

REQUIRED_ACCURACY = 0.97


def test_default_model_accuracy(default_model: RobustModel, digits_test: EvalData) -> None:
    accuracy = float((default_model.predict(digits_test.x) == digits_test.y).float().mean())
    assert accuracy >= REQUIRED_ACCURACY


def test_digits_split_is_fixed(digits_test: EvalData) -> None:
    assert len(digits_test.x) == 450
    assert digits_test.input_shape == (1, 8, 8)
    assert digits_test.class_names == tuple(str(i) for i in range(10))


@pytest.mark.slow
def test_regenerating_the_default_model(tmp_path: Path, default_model: RobustModel,
                                        digits_test: EvalData) -> None:
    """`robust train digits-cnn` with its defaults reproduces the bundled model's accuracy
    (to one test sample: other CPU instruction sets may round differently)."""
    out = tmp_path / "digits_cnn.safetensors"
    result = CliRunner().invoke(cli, ["train", "digits-cnn", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    with safe_open(str(out), "pt") as handle:
        retrained = float(handle.metadata()["test_accuracy"])
    bundled = float((default_model.predict(digits_test.x) == digits_test.y).float().mean())
    assert abs(retrained - bundled) <= 1 / len(digits_test.x) + 1e-9
    assert retrained >= REQUIRED_ACCURACY
    assert f"{100 * retrained:.2f}%" in result.output


def test_training_recipe_defaults_are_documented() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "default-model.md").read_text()
    recipe = TrainingRecipe()
    for value in (recipe.epochs, recipe.batch_size, recipe.learning_rate, recipe.seed):
        assert str(value) in text
    assert torch.__version__.split("+")[0] in text
