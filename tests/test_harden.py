"""``robust harden`` and its training loop: determinism, checkpoints and resume, outputs,
errors, and the proof that PGD adversarial training hardens the default model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from trap_models import default_digits_module, digits_train

import robustbench_lite
from robustbench_lite.catalogue import build_catalogue
from robustbench_lite.cli import cli
from robustbench_lite.defenses.adversarial import PGDAT
from robustbench_lite.defenses.base import Defense, TrainingStep, compose
from robustbench_lite.defenses.smoothing import LabelSmoothing
from robustbench_lite.defenses.spec import build_recipe
from robustbench_lite.errors import DefenseError
from robustbench_lite.hardening import harden
from robustbench_lite.matrix.core import ThreatMatrix
from robustbench_lite.matrix.presets import STANDARD_ATTACKS
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.threat import Norm, ThreatModel
from robustbench_lite.training.harden import CHECKPOINT, EpochLog, Hardener, HardenSettings

SMALL = HardenSettings(epochs=3, batch_size=64, seed=0, validation_fraction=0.2)


def hardener(out: Path | None, settings: HardenSettings = SMALL) -> Hardener:
    train = digits_train().subset(300)
    recipe = compose([PGDAT(steps=3), LabelSmoothing()])
    return Hardener(default_digits_module(), recipe, train, settings, out, "default")


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_same_seed_same_model_and_log() -> None:
    first, second = hardener(None), hardener(None)
    a, b = first.run(show_progress=False), second.run(show_progress=False)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert [e.loss for e in first.log] == [e.loss for e in second.log]
    assert [e.epoch for e in first.log] == [1, 2, 3]
    other = hardener(None, HardenSettings(epochs=3, seed=1, validation_fraction=0.2))
    c = other.run(show_progress=False)
    assert not all(torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in a.state_dict())


def test_interrupted_run_resumes_to_the_same_model(tmp_path: Path) -> None:
    reference = weights(hardener(None).run(show_progress=False))

    def interrupt(entry: EpochLog) -> None:
        if entry.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hardener(tmp_path).run(show_progress=False, on_epoch=interrupt)
    assert (tmp_path / CHECKPOINT).is_file()
    resumed = hardener(tmp_path)
    final = resumed.run(resume=True, show_progress=False)
    assert [entry.epoch for entry in resumed.log] == [1, 2, 3]
    assert all(torch.equal(final.state_dict()[k], reference[k]) for k in reference)


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    hardener(tmp_path, HardenSettings(epochs=1, validation_fraction=0.2)).run(
        show_progress=False)
    with pytest.raises(DefenseError, match="belongs to a run with other settings"):
        hardener(tmp_path).run(resume=True, show_progress=False)


def test_validation_split_is_held_out() -> None:
    run = hardener(None)
    assert len(run.validation.x) == 60 and len(run.training.x) == 240
    seen = {tuple(row.flatten().tolist()) for row in run.training.x}
    assert not any(tuple(row.flatten().tolist()) in seen for row in run.validation.x[:20])


HARDEN = ("harden", "--defense", "pgd-at:steps=3", "--epochs", "2", "--matrix", "quick",
          "--n-samples", "60", "-q")


def test_harden_command_writes_everything(tmp_path: Path) -> None:
    out = tmp_path / "hardened"
    result = CliRunner().invoke(cli, [*HARDEN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("model.safetensors", "model.pt", "training_log.csv", "training_log.json",
                 "checkpoint.pt", "comparison.html", "before/report.html",
                 "after/report.html", "before/results.json", "after/results.json"):
        assert (out / name).is_file(), name
    log = json.loads((out / "training_log.json").read_text())
    assert [entry["epoch"] for entry in log] == [1, 2]
    after = json.loads((out / "after/results.json").read_text())
    assert after["model"]["name"] == "digits-cnn (hardened)"
    assert after["model"]["format"] == "safetensors"
    audit = CliRunner().invoke(cli, ["audit", str(out / "model.pt"), "--data", "digits",
                                     "--matrix", "quick", "--n-samples", "30",
                                     "--no-transfer", "--no-checks", "--examples", "0", "-q",
                                     "--out", str(tmp_path / "again")])
    assert audit.exit_code == 0, audit.output
    again = CliRunner().invoke(cli, [*HARDEN, "--out", str(out)])
    assert again.exit_code == 1
    assert "holds a checkpoint of an earlier run; pass --resume" in again.stderr


@pytest.mark.parametrize(("defenses", "message"), [
    (["--defense", "no-such"], "unknown defense 'no-such'; choose one of:"),
    (["--defense", "pgd-at:stepz=3"], "defense 'pgd-at' has no parameter stepz"),
    (["--defense", "pgd-at", "--defense", "trades"], "both perturbs the training batch"),
    (["--defense", "pgd-at:steps=3,oops"], "defense parameter 'oops'"),
])
def test_bad_defenses_are_one_error_line(tmp_path: Path, defenses: list[str],
                                         message: str) -> None:
    result = CliRunner().invoke(cli, ["harden", *defenses, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "o" / "model.pt").exists()


class Shrink(Defense):
    """Scales every batch towards mid-grey: a toy perturbing defense from a plugin."""

    name = "shrink"

    def __init__(self, *, factor: float = 0.9) -> None:
        self.factor = factor
        self._set_params(factor=factor)

    def perturb(self, step: TrainingStep) -> torch.Tensor:
        return 0.5 + self.factor * (step.x - 0.5)


def test_plugin_defense_through_register_defenses() -> None:
    module = ModuleType("defense_plugin")

    def register_defenses(register: Callable[[Any], None]) -> None:
        register(Shrink)

    module.register_defenses = robustbench_lite.hookimpl(register_defenses)  # type: ignore[attr-defined]
    catalogue = build_catalogue(get_plugin_manager(load_entrypoints=False,
                                                   extra_plugins=(module,)))
    assert {"pgd-at", "trades", "label-smoothing", "shrink"} <= set(catalogue.defenses.names())
    recipe = build_recipe(["shrink:factor=0.5", "label-smoothing"], catalogue)
    assert recipe.perturber is recipe.defenses[0] and recipe.objective is recipe.defenses[1]
    net = default_digits_module()
    x, y = digits_train().x[:8], digits_train().y[:8]
    step = TrainingStep(net, x, y, 10, 0.0, torch.Generator())
    expected = torch.nn.functional.cross_entropy(net(0.5 + 0.5 * (x - 0.5)), y,
                                                 label_smoothing=0.1)
    assert torch.allclose(recipe.step_loss(step), expected)


@pytest.mark.slow
def test_label_smoothing_shows_up_honestly(tmp_path: Path) -> None:
    """Label smoothing flattens the logits but adds little true robustness: with a black-box
    attack in the matrix the worst case stays where it was (measured: 61.0% before, 59.5%
    after on 200 samples, while PGD alone would claim 64%; the white-box check flags that
    Square beats the gradient attacks)."""
    matrix = ThreatMatrix("proof", "1", ("fgsm", "pgd:steps=20,restarts=2", "apgd-ce",
                                         "square:n_queries=300"),
                          (ThreatModel(Norm.LINF, 0.1),))
    outcome = harden(None, None, defenses=["label-smoothing:smoothing=0.2"], out=tmp_path,
                     matrix=matrix, settings=HardenSettings(epochs=5), n_samples=200)
    before = outcome.before.robust_accuracy[0].accuracy
    after = outcome.after.robust_accuracy[0].accuracy
    assert after <= before + 0.05
    assert outcome.after.clean_accuracy >= outcome.before.clean_accuracy - 0.03


#: The proof recipe of docs/harden.md: PGD training at 1.5x the digits standard eps.
PROOF_DEFENSE = "pgd-at:eps=0.15"
PROOF_SETTINGS = HardenSettings(epochs=40, learning_rate=3e-3)


@pytest.mark.slow
def test_pgd_training_hardens_the_default_model_by_30_points(tmp_path: Path) -> None:
    """The issue's proof: under the standard matrix's attacks at the digits standard Linf eps
    (0.1), worst-case robust accuracy of the default model rises by at least 30 points and
    clean accuracy drops by at most 3, with no sanity check failing after. Measured on the
    450 test digits: see docs/harden.md."""
    matrix = ThreatMatrix("proof", "1", STANDARD_ATTACKS, (ThreatModel(Norm.LINF, 0.1),))
    outcome = harden(None, None, defenses=[PROOF_DEFENSE], out=tmp_path, matrix=matrix,
                     settings=PROOF_SETTINGS)
    before, after = outcome.before, outcome.after
    gained = after.robust_accuracy[0].accuracy - before.robust_accuracy[0].accuracy
    print(f"worst case {before.robust_accuracy[0].accuracy:.4f} -> "
          f"{after.robust_accuracy[0].accuracy:.4f}, clean {before.clean_accuracy:.4f} -> "
          f"{after.clean_accuracy:.4f}, checks {[(c.name, c.status) for c in after.checks]}")
    assert gained >= 0.30, (before.robust_accuracy, after.robust_accuracy)
    assert after.clean_accuracy >= before.clean_accuracy - 0.03
    assert not [check for check in after.checks if check.status == "fail"], after.checks


def test_no_validation_split(tmp_path: Path) -> None:
    out = tmp_path / "hardened"
    result = CliRunner().invoke(cli, [*HARDEN, "--epochs", "1", "--validation-fraction", "0",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    log = json.loads((out / "training_log.json").read_text())
    assert log[0]["clean_accuracy"] is None and log[0]["adversarial_accuracy"] is None
    assert log[0]["loss"] > 0
