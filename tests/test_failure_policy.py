"""One failure policy: a stage that cannot serve a threat model, or raises, leaves a one-line
note in the result (and the report) and the audit completes with everything else."""

from __future__ import annotations

import pytest
import torch

from robustbench_lite.attacks import FGSM, PGD
from robustbench_lite.attacks.base import Attack, AttackKind, LogitsFn
from robustbench_lite.checks.base import Check, CheckContext, CheckStage
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine import audit as engine_audit
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.engine.transfer import TransferPlan
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import AuditResult, SanityCheck
from robustbench_lite.tasks.objective import Objective
from robustbench_lite.threat import Norm, ThreatModel

SETTINGS = AuditSettings(show_progress=False, examples=2)
LINF = ThreatModel(Norm.LINF, 0.1)


class Exploding(Attack):
    """Raises on every batch."""

    name = "exploding"
    norms = frozenset({Norm.LINF})
    kind = AttackKind.GRADIENT

    def __init__(self) -> None:
        self._set_params()

    def run(self, model: LogitsFn, x: torch.Tensor, objective: Objective,
            threat: ThreatModel, generator: torch.Generator) -> torch.Tensor:
        raise RuntimeError("boom")


class RaisingCheck(Check):
    name = "raising"
    stage = CheckStage.AFTER
    description = "Always raises."

    def run(self, context: CheckContext) -> SanityCheck | None:
        raise ValueError("no numbers today")


@pytest.fixture(scope="module")
def data(digits_test: EvalData) -> EvalData:
    return digits_test.subset(60)


def _notes(result: AuditResult) -> set[tuple[str, str, str]]:
    return {(note.stage, note.subject, note.status) for note in result.notes}


def test_a_failing_transfer_attack_is_noted_and_the_audit_completes(
        default_model: RobustModel, data: EvalData) -> None:
    semantic = ThreatModel(Norm.SEMANTIC, 2.0)
    targeted = ThreatModel(Norm.LINF, 0.1, targeted=True)
    result = run_audit(default_model, data, [FGSM()], [LINF, targeted, semantic], SETTINGS,
                       [], transfer=TransferPlan(Exploding(), [default_model]))
    assert _notes(result) == {("transfer", "", "failed"),
                              ("transfer", targeted.label, "not applicable"),
                              ("transfer", semantic.label, "not applicable")}
    failed = next(note for note in result.notes if note.status == "failed")
    assert failed.reason == "RuntimeError: boom"
    assert result.cells[0].accuracy is not None and result.transfer == []
    html = render_html(result)
    assert "3 part(s) not run, 1 failed" in html
    assert "transfer: failed: RuntimeError: boom" in html


def test_unusable_threat_models_are_skipped_by_the_transfer_stage_only(
        default_model: RobustModel, data: EvalData) -> None:
    l2 = ThreatModel(Norm.L2, 1.0)
    result = run_audit(default_model, data, [PGD(steps=5)], [LINF, l2], SETTINGS, [],
                       transfer=TransferPlan(FGSM(), [default_model]))
    assert _notes(result) == {("transfer", l2.label, "not applicable")}
    assert "does not support" in result.notes[0].reason
    assert {row["norm"] for row in result.transfer} == {"linf"}


def test_failing_examples_certificate_and_checks_are_noted(
        default_model: RobustModel, data: EvalData, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(engine_audit, "headline_examples", broken)
    monkeypatch.setattr(engine_audit, "certificate", broken)
    result = run_audit(default_model, data, [FGSM()], [LINF], SETTINGS, [],
                       checks=[RaisingCheck()], certify=True)
    assert _notes(result) == {("examples", "", "failed"), ("certificate", "", "failed"),
                              ("checks", "raising", "failed")}
    assert result.checks == []  # a check that could not run is not a warning
    assert "no numbers today" in next(n.reason for n in result.notes if n.stage == "checks")
    assert result.cells[0].accuracy is not None
    round_trip = AuditResult.from_dict(result.to_dict())
    assert round_trip.notes == result.notes


def test_an_attack_that_cannot_serve_the_objective_is_skipped(
        default_model: RobustModel, data: EvalData) -> None:
    from robustbench_lite.attacks import DeepFool

    targeted = ThreatModel(Norm.L2, 1.0, targeted=True)
    result = run_audit(default_model, data, [DeepFool()], [targeted], SETTINGS, [])
    (cell,) = result.cells
    assert cell.accuracy is None
    assert cell.skipped is not None and "targeted" in cell.skipped and "labels" in cell.skipped
