"""Targeted threat models: the host chooses each sample's target, attacks pursue it, success
is the model predicting it, and the results say so (regressions of the bug where targeted
cells reported clean accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from robustbench_lite.api import audit
from robustbench_lite.attacks.backends import ArtAttack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.cli import cli
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.targets import threat_goal
from robustbench_lite.errors import MatrixError, ThreatModelError
from robustbench_lite.host.attack import CLASSIFICATION, attack_batch
from robustbench_lite.matrix.files import load_matrix_file, matrix_to_toml
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.threat import Norm, ThreatModel, parse_threat_spec

MATRIX = """\
name = "targeted-check"
attacks = ["pgd:steps=20", "fgsm"]
[[threats]]
norm = "linf"
eps = 0.2
[[threats]]
norm = "linf"
eps = 0.2
targeted = true
"""


def test_the_reported_matrix_gives_real_targeted_numbers(tmp_path: Path) -> None:
    """The issue's reproduction through the CLI: targeted cells used to report the clean
    accuracy (98.2%) because the true labels were passed as targets."""
    matrix = tmp_path / "targeted.toml"
    matrix.write_text(MATRIX)
    out = tmp_path / "out"
    run = CliRunner().invoke(cli, ["audit", "--matrix", str(matrix), "--no-transfer",
                                   "--out", str(out)])
    assert run.exit_code == 0, run.output
    raw = json.loads((out / "results.json").read_text())
    targeted = {c["attack"]: c for c in raw["cells"] if c["targeted"]}
    assert set(targeted) == {"pgd", "fgsm"}
    clean = raw["clean_accuracy"]
    for cell in targeted.values():
        assert cell["target_mode"] == "random"
        assert cell["accuracy"] < clean - 0.5  # not the clean accuracy any more
        assert 0 < cell["success_rate"] <= 1
    assert targeted["pgd"]["success_rate"] > targeted["fgsm"]["success_rate"]
    # the targets are recorded per cell: both attacks pursued the same ones
    assert len(targeted["pgd"]["targets_sha256"]) == 64
    assert targeted["pgd"]["targets_sha256"] == targeted["fgsm"]["targets_sha256"]
    assert all(c["targets_sha256"] is None for c in raw["cells"] if not c["targeted"])
    summary = next(row for row in raw["robust_accuracy"] if row["targeted"])
    assert summary["target_mode"] == "random" and summary["success_rate"] >= 0.5
    assert all(check["status"] != "fail" for check in raw["checks"]), raw["checks"]
    html = (out / "report.html").read_text()
    assert "targeted Linf 0.2" in html and "put in their target" in html
    assert "Targeted success" in run.output


def test_targeted_pgd_at_linf_03_reaches_95_percent_of_targets(
        default_model: RobustModel, digits_test: EvalData) -> None:
    result = audit(default_model, digits_test, attacks=["pgd:steps=100,restarts=2"],
                   threats=["linf:0.3:targeted"], transfer=False, checks=False, examples=0)
    (cell,) = result.cells
    assert cell.success_rate is not None and cell.success_rate >= 0.95
    assert cell.accuracy is not None and cell.accuracy <= 0.05


def test_our_targeted_pgd_matches_arts_on_the_same_targets(
        default_model: RobustModel, tiny_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = tiny_batch
    threat = ThreatModel(Norm.LINF, 0.3, targeted=True)
    goal = threat_goal(CLASSIFICATION, threat, default_model(x).detach(), y, seed=0)
    assert goal.targets is not None
    ours = attack_batch(PGD(steps=40), default_model, x, y, threat, 0, targets=goal.targets)
    art = attack_batch(ArtAttack(target="ProjectedGradientDescent", max_iter=40,
                                 eps_step=0.3 / 4, num_random_init=1),
                       default_model, x, y, threat, 0, targets=goal.targets)
    reached = default_model(ours.x_adv).argmax(dim=1) == goal.targets
    assert torch.equal(ours.success.cpu(), reached)
    ours_rate, art_rate = float(ours.success.float().mean()), float(art.success.float().mean())
    assert ours_rate >= 0.9
    assert ours_rate >= art_rate - 2 / len(x), (ours_rate, art_rate)


@pytest.mark.parametrize("mode", ["random", "next-likely", "least-likely", "3"])
def test_the_host_chooses_targets(mode: str, default_model: RobustModel,
                                  digits_test: EvalData) -> None:
    x, y = digits_test.x[:200], digits_test.y[:200]
    outputs = default_model(x).detach()
    threat = ThreatModel(Norm.LINF, 0.1, targeted=True, targets=mode)
    goal = threat_goal(CLASSIFICATION, threat, outputs, y, seed=7)
    targets = goal.targets
    assert targets is not None
    again = threat_goal(CLASSIFICATION, threat, outputs, y, seed=7).targets
    assert again is not None and torch.equal(targets, again)
    has_target = targets >= 0
    assert bool((targets[has_target] != y[has_target]).all())  # never the true class
    others = outputs.scatter(1, y[:, None], float("-inf"))
    if mode == "random":
        assert bool(has_target.all())
        assert len(set(targets.tolist())) == 10  # every class is drawn
        other_seed = threat_goal(CLASSIFICATION, threat, outputs, y, seed=8).targets
        assert other_seed is not None and not torch.equal(targets, other_seed)
    elif mode == "next-likely":
        assert torch.equal(targets, others.argmax(dim=1))
    elif mode == "least-likely":
        assert torch.equal(targets, outputs.argmin(dim=1))
    else:
        assert torch.equal(has_target, y != 3) and bool((targets[has_target] == 3).all())
    assert goal.key_text.startswith(f"targeted ({mode}) targets sha256:")


def test_a_fixed_target_class_must_exist(default_model: RobustModel,
                                         digits_test: EvalData) -> None:
    result = audit(default_model, digits_test.subset(30), attacks=["fgsm"],
                   threats=["linf:0.1:targeted=12"], transfer=False, examples=0)
    assert "target class 12 does not exist" in (result.cells[0].skipped or "")


def test_samples_of_the_fixed_target_class_are_not_attacked(
        default_model: RobustModel, digits_test: EvalData) -> None:
    data = digits_test.subset(100)
    result = audit(default_model, data, attacks=["pgd:steps=20"],
                   threats=["linf:0.3:targeted=3"], transfer=False, examples=0)
    (cell,) = result.cells
    correct = default_model.predict(data.x) == data.y
    assert cell.n_attacked == int((correct & (data.y != 3)).sum())
    assert cell.target_mode == "3" and cell.success_rate is not None
    # correct samples of class 3 have no target and stay correct, in the cell as in the
    # worst case (one attack: the two agree)
    assert cell.accuracy == result.robust_accuracy[0].accuracy
    assert cell.accuracy >= float((correct & (data.y == 3)).float().mean())
    assert "targeted(class 3) Linf 0.3" in result.accuracy_table().columns


def test_target_modes_parse_from_the_command_line_and_toml(tmp_path: Path) -> None:
    (threat,) = parse_threat_spec("linf:0.2:targeted=least-likely")
    assert threat.targeted and threat.targets == "least-likely"
    assert threat.label == "targeted(least-likely) linf eps=0.2"
    plain, = parse_threat_spec("l2:0.5:targeted")
    assert plain.targets == "random" and plain.label == "targeted l2 eps=0.5"
    assert not parse_threat_spec("linf:0.2")[0].targeted
    for bad in ("linf:0.2:targetted", "linf:0.2:targeted=", "linf:0.2:targeted=most-likely"):
        with pytest.raises(ThreatModelError):
            parse_threat_spec(bad)
    path = tmp_path / "m.toml"
    path.write_text(MATRIX.replace("targeted = true", 'targeted = true\ntargets = "next-likely"'))
    matrix = load_matrix_file(path)
    assert [t.target_mode for t in matrix.threats] == [None, "next-likely"]
    path.write_text(matrix_to_toml(matrix))
    assert load_matrix_file(path) == matrix
    path.write_text(MATRIX.replace("targeted = true", 'targets = "random"'))
    with pytest.raises(MatrixError, match=r"threats\[1\].targets.*targeted = true"):
        load_matrix_file(path)


def test_targets_and_target_mode_are_part_of_the_store_key(
        default_model: RobustModel, digits_test: EvalData, tmp_path: Path) -> None:
    store = tmp_path / "results.sqlite"
    data = digits_test.subset(40)
    kwargs = {"attacks": ["fgsm"], "transfer": False, "checks": False, "examples": 0,
              "store": store}
    first = audit(default_model, data, threats=["linf:0.2:targeted"], **kwargs)
    other_mode = audit(default_model, data, threats=["linf:0.2:targeted=least-likely"],
                       **kwargs)
    other_seed = audit(default_model, data, threats=["linf:0.2:targeted"], seed=1, **kwargs)
    from robustbench_lite.engine.store import ResultStore

    with ResultStore(store) as opened:
        objectives = {key.objective for key in opened.keys()}  # noqa: SIM118 (a store method)
    assert len(objectives) == 3  # three different sets of targets, none reused
    assert first.cells[0].success_rate is not None
    assert other_mode.cells[0].target_mode == "least-likely"
    assert other_seed.cells[0].success_rate is not None
    assert np.isfinite(first.cells[0].accuracy or np.nan)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_targets_and_objectives_on_cuda(default_model: RobustModel,
                                        digits_test: EvalData) -> None:
    """The engine chooses targets on the CPU and attacks on the model's device."""
    import copy

    model = copy.deepcopy(default_model).to("cuda")
    result = audit(model, digits_test.subset(100), attacks=["pgd:steps=40", "apgd-t:steps=20"],
                   threats=["linf:0.3:targeted=next-likely", "linf:0.1"], transfer=False,
                   examples=2, device="cuda")
    assert result.run.device.startswith("cuda")
    targeted = [cell for cell in result.cells if cell.targeted]
    assert all(cell.success_rate is not None and cell.success_rate >= 0.9 for cell in targeted)
    assert result.notes == []
