"""Semantic robustness from the command line: a colour-digits classifier trained with
``robust train``, audited with the semantic threat model by default, and hardened with
RandMix; plus the reduced-size run of the AdvMix paper's experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.cli import cli
from robustbench_lite.semantic.experiment import COLUMNS, ExperimentSettings, run_experiment


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("colour") / "colour_cnn.safetensors"
    result = CliRunner().invoke(cli, ["train", "digits-cnn", "--data", "colour-digits",
                                      "--arch-kwargs", '{"in_channels": 3}', "--epochs", "3",
                                      "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


def test_colour_digits_audit_includes_the_semantic_threat(colour_model: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "audit"
    result = CliRunner().invoke(cli, ["audit", str(colour_model), "--data", "colour-digits",
                                      "--matrix", "quick", "--n-samples", "40",
                                      "--no-transfer", "--examples", "2", "-q",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output  # no --arch: the file names it
    raw = json.loads((out / "results.json").read_text())
    semantic = [cell for cell in raw["cells"]
                if cell["norm"] == "semantic" and cell["accuracy"] is not None]
    assert [(cell["attack"], cell["eps"]) for cell in semantic] == [("advmix", 2.0)]
    assert not semantic[0]["violations"]
    assert "semantic" in {example["norm"] for example in raw["examples"]}
    assert "a style generator re-draws the image" in (out / "report.html").read_text()


def test_colour_digits_audit_with_transfer_completes(colour_model: Path,
                                                     tmp_path: Path) -> None:
    """Regression: the transfer table met the semantic threat model and stopped the audit
    after every cell had run, with no report. Now it has its Linf rows and a "not
    applicable" line for the semantic threat model, in results.json and the report."""
    out = tmp_path / "audit"
    result = CliRunner().invoke(cli, ["audit", str(colour_model), "--data", "colour-digits",
                                      "--matrix", "quick", "--n-samples", "40",
                                      "--examples", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    raw = json.loads((out / "results.json").read_text())
    assert {(row["norm"], row["eps"]) for row in raw["transfer"]} == {("linf", 0.05),
                                                                      ("linf", 0.1)}
    (note,) = raw["notes"]
    assert (note["stage"], note["subject"], note["status"]) == (
        "transfer", "semantic eps=2", "not applicable")
    assert "semantic threat model has none" in note["reason"]
    html = (out / "report.html").read_text()
    assert "semantic eps=2: not applicable" in html
    assert "transfer (semantic eps=2) not applicable" in result.output


def test_harden_with_randmix_and_label_smoothing(colour_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "hardened"
    result = CliRunner().invoke(cli, [
        "harden", str(colour_model), "--data", "colour-digits", "--defense", "randmix",
        "--defense", "label-smoothing", "--epochs", "1", "--matrix", "quick",
        "--n-samples", "30", "--validation-fraction", "0", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "comparison.html").is_file()
    refused = CliRunner().invoke(cli, [
        "harden", str(colour_model), "--data", "colour-digits", "--defense", "advmix",
        "--defense", "pgd-at", "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 1
    assert "both perturbs the training batch" in refused.stderr


@pytest.mark.slow
def test_reduced_paper_experiment(catalogue: Catalogue) -> None:
    """Two epochs and 60 test samples: the table is complete, and random style mixes
    already beat the colour shortcut the nominal model learns (the paper's core finding)."""
    settings = ExperimentSettings(epochs=2, n_test=60, attack_steps=5, attack_restarts=1)
    table = run_experiment(settings, catalogue).set_index("method")
    assert list(table.reset_index().columns) == COLUMNS
    assert list(table.index) == ["nominal", "pgd-at", "randmix", "advmix"]
    shifted = table["shifted_test_accuracy"]
    assert shifted["randmix"] > shifted["nominal"] + 0.2, table
    assert shifted["advmix"] > shifted["nominal"] + 0.2, table
    assert (table["semantic_attack_accuracy"] <= shifted + 1e-9).all(), table
