"""The audit engine: the host never trusts an attack, a failing attack fails its own cell."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import torch
from click.testing import CliRunner

import robustbench_lite
from robustbench_lite.attacks import FGSM, PGD
from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.cli import audit as audit_cli
from robustbench_lite.cli import cli
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.host.verify import verify_batch
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.threat import Norm, ThreatModel

SETTINGS = AuditSettings(seed=0, batch_size=64, show_progress=False)


class OutOfBall(Attack):
    """Cheats: returns an image far outside the eps-ball (and so fools the model)."""

    name = "out-of-ball"
    norms: ClassVar[frozenset[Norm]] = frozenset({Norm.LINF})
    kind = AttackKind.BASELINE

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        return 1 - x


class Crashing(Attack):
    name = "crashing"
    norms: ClassVar[frozenset[Norm]] = frozenset({Norm.LINF})
    kind = AttackKind.BASELINE

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        raise RuntimeError("boom")


class WrongShape(Attack):
    name = "wrong-shape"
    norms: ClassVar[frozenset[Norm]] = frozenset({Norm.LINF})
    kind = AttackKind.BASELINE

    def run(self, model: LogitsFn, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        return x[:, :, :4]


@pytest.fixture(scope="module")
def small_data(digits_test: EvalData) -> EvalData:
    return digits_test.subset(120)


def test_verify_batch_flags_each_problem() -> None:
    x = torch.rand(4, 1, 8, 8)
    threat = ThreatModel(Norm.LINF, 0.1)
    assert bool(verify_batch(x, x.clone(), threat).valid.all())
    assert not verify_batch(x, "nope", threat).valid.any()
    assert not verify_batch(x, x[:2], threat).valid.any()
    assert not verify_batch(x, x.double(), threat).valid.any()
    bad = x.clone()
    bad[1, 0, 0, 0] = float("nan")
    bad[2] = (x[2] + 0.5).clamp(0, 1)
    result = verify_batch(x, bad, threat)
    assert result.valid.tolist() == [True, False, False, True]
    assert any("not finite" in p for p in result.problems)
    assert any("outside" in p for p in result.problems)


def test_cheating_attack_is_caught_and_not_counted(default_model: RobustModel,
                                                   small_data: EvalData) -> None:
    threat = ThreatModel(Norm.LINF, 0.05)
    result = run_audit(default_model, small_data, [OutOfBall(), FGSM()], [threat], SETTINGS, [])
    cheat, fgsm = result.cells
    assert cheat.violations == round(result.clean_accuracy * len(small_data.x))
    assert "outside" in cheat.violation_details[0]
    assert cheat.accuracy == pytest.approx(result.clean_accuracy)
    assert result.robust_accuracy[0].accuracy == pytest.approx(fgsm.accuracy)


def test_crashing_attack_fails_only_its_cell(default_model: RobustModel,
                                             small_data: EvalData) -> None:
    threat = ThreatModel(Norm.LINF, 0.1)
    result = run_audit(default_model, small_data, [Crashing(), PGD(steps=5)], [threat],
                       SETTINGS, [])
    failed, pgd = result.cells
    assert failed.error == "RuntimeError: boom" and failed.accuracy is None
    assert result.robust_accuracy[0].attacks == ["pgd"]
    assert pgd.accuracy is not None and pgd.accuracy < result.clean_accuracy


def test_wrong_shape_output_is_a_violation(default_model: RobustModel,
                                           small_data: EvalData) -> None:
    threat = ThreatModel(Norm.LINF, 0.1)
    result = run_audit(default_model, small_data, [WrongShape()], [threat], SETTINGS, [])
    cell = result.cells[0]
    assert cell.violations > 0 and "shape" in cell.violation_details[0]
    assert cell.accuracy == pytest.approx(result.clean_accuracy)


def test_unsupported_norm_is_skipped(default_model: RobustModel, small_data: EvalData) -> None:
    result = run_audit(default_model, small_data, [FGSM()], [ThreatModel(Norm.L2, 1.0)],
                       SETTINGS, [])
    assert result.cells[0].skipped == "fgsm does not support l2 eps=1"
    assert result.robust_accuracy[0].accuracy == pytest.approx(result.clean_accuracy)


def test_accuracy_and_worst_case(default_model: RobustModel, small_data: EvalData) -> None:
    threats = [ThreatModel(Norm.LINF, eps) for eps in (0.0, 0.05, 0.1, 0.3)]
    result = run_audit(default_model, small_data, [FGSM(), PGD(steps=10)], threats, SETTINGS,
                       [])
    by_attack: dict[str, list[float]] = {}
    for cell in result.cells:
        assert cell.accuracy is not None
        by_attack.setdefault(cell.attack, []).append(cell.accuracy)
    for accuracies in by_attack.values():
        assert accuracies[0] == result.clean_accuracy  # eps = 0: exactly the clean accuracy
        assert accuracies == sorted(accuracies, reverse=True)  # non-increasing in eps
    for index, summary in enumerate(result.robust_accuracy):
        assert summary.accuracy <= min(values[index] for values in by_attack.values())
    assert result.robust_accuracy[-1].accuracy == 0.0


def test_same_seed_same_result(default_model: RobustModel, small_data: EvalData) -> None:
    threat = [ThreatModel(Norm.LINF, 0.1)]
    first = run_audit(default_model, small_data, [PGD(steps=3)], threat, SETTINGS, [])
    again = run_audit(default_model, small_data, [PGD(steps=3)], threat, SETTINGS, [])
    assert first.cells[0].accuracy == again.cells[0].accuracy
    assert first.cells[0].mean_distance == again.cells[0].mean_distance


def test_cheating_plugin_is_reported_by_the_cli(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = ModuleType("cheating_plugin")

    def register_attacks(register: Callable[[Any], None]) -> None:
        register(OutOfBall)

    plugin.register_attacks = robustbench_lite.hookimpl(register_attacks)  # type: ignore[attr-defined]
    manager = get_plugin_manager(load_entrypoints=False, extra_plugins=(plugin,))
    monkeypatch.setattr(audit_cli, "default_plugin_manager", lambda: manager)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", "--matrix", "quick", "--attack", "out-of-ball",
                                      "--attack", "fgsm", "--n-samples", "40", "--no-transfer",
                                      "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    cells = json.loads((out / "results.json").read_text())["cells"]
    cheat = [cell for cell in cells if cell["attack"] == "out-of-ball"]
    assert cheat and all(cell["violations"] > 0 for cell in cheat)
    assert "invalid example(s) not counted" in (out / "report.html").read_text()
    assert "out-of-ball linf eps=0.1 returned invalid adversarial examples" in result.stderr
