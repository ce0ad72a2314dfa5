"""The engine with the result store: resumption, shards, cascade mode, curves, per-class."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustbench_lite.attacks import FGSM, PGD, DeepFool
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import AuditResult
from robustbench_lite.threat import Norm, ThreatModel

THREATS = [ThreatModel(Norm.LINF, 0.05), ThreatModel(Norm.LINF, 0.1)]


@pytest.fixture(scope="module")
def data(digits_test: EvalData) -> EvalData:
    return digits_test.subset(150)


def numbers(result: AuditResult) -> list[object]:
    return [(c.attack, c.eps, c.accuracy, c.mean_distance, c.queries) for c in result.cells] + [
        (s.eps, s.accuracy) for s in result.robust_accuracy]


def audit(model: RobustModel, data: EvalData, store: ResultStore | None = None,
          **settings: object) -> AuditResult:
    return run_audit(model, data, [FGSM(), PGD(steps=5)], THREATS,
                     AuditSettings(show_progress=False, **settings),  # type: ignore[arg-type]
                     [], store=store)


def test_rerun_reuses_the_store(default_model: RobustModel, data: EvalData,
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ResultStore(tmp_path / "results.sqlite") as store:
        first = audit(default_model, data, store)
        assert len(store) == 4
    from robustbench_lite.engine import grid

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished unit was recomputed")

    monkeypatch.setattr(grid, "run_unit", fail)
    with ResultStore(tmp_path / "results.sqlite") as store:
        again = audit(default_model, data, store)
    assert numbers(again) == numbers(first)
    assert {c.batch_size for c in first.cells} == {128}
    assert {c.batch_size for c in again.cells} == {None}  # read from the store: not known


@pytest.mark.parametrize("bump", ["attack", "task", "package"])
def test_a_new_implementation_version_recomputes(bump: str, default_model: RobustModel,
                                                 data: EvalData, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored cell names what computed it: after an upgrade of the package, the attack or
    the task, a rerun recomputes instead of reusing an older result."""
    import robustbench_lite
    from robustbench_lite.engine import grid
    from robustbench_lite.tasks.classification.task import ClassificationTask

    with ResultStore(tmp_path / "results.sqlite") as store:
        audit(default_model, data, store)
        assert len(store) == 4
    if bump == "attack":
        monkeypatch.setattr(PGD, "version", PGD.version + 1)
    elif bump == "task":
        monkeypatch.setattr(ClassificationTask, "version", ClassificationTask.version + 1)
    else:
        monkeypatch.setattr(robustbench_lite, "__version__", "99.0.0")
    computed: list[str] = []
    real = grid.run_unit

    def counting(model: RobustModel, data: EvalData, unit: object, *args: object) -> object:
        computed.append(unit.attack.name)  # type: ignore[attr-defined]
        return real(model, data, unit, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(grid, "run_unit", counting)
    with ResultStore(tmp_path / "results.sqlite") as store:
        audit(default_model, data, store)
        versions = [dict(key.versions) for key in store.keys()]  # noqa: SIM118 (a store method)
    expected = {"attack": ["pgd", "pgd"], "task": ["fgsm", "pgd", "fgsm", "pgd"],
                "package": ["fgsm", "pgd", "fgsm", "pgd"]}[bump]
    assert computed == expected
    assert all(set(v) == {"robustbench_lite", "attack", "task"} for v in versions)


def test_other_seed_is_not_reused(default_model: RobustModel, data: EvalData,
                                  tmp_path: Path) -> None:
    with ResultStore(tmp_path / "results.sqlite") as store:
        audit(default_model, data, store, seed=0)
        audit(default_model, data, store, seed=1)
        assert len(store) == 8


def test_shards_give_the_same_accuracy(default_model: RobustModel, data: EvalData) -> None:
    whole = audit(default_model, data)
    sharded = audit(default_model, data, shard_size=40)
    assert [c.accuracy for c in sharded.cells if c.attack == "fgsm"] == [
        c.accuracy for c in whole.cells if c.attack == "fgsm"]
    for left, right in zip(sharded.robust_accuracy, whole.robust_accuracy, strict=True):
        assert abs(left.accuracy - right.accuracy) <= 2 / len(data.x)


def test_cascade_gives_the_same_worst_case(default_model: RobustModel,
                                           data: EvalData) -> None:
    full = audit(default_model, data)
    fast = audit(default_model, data, fast=True)
    assert fast.mode == "fast (cascade)" and full.mode == "full"
    assert [s.accuracy for s in fast.robust_accuracy] == pytest.approx(
        [s.accuracy for s in full.robust_accuracy], abs=2 / len(data.x))
    # in cascade mode a cell shows the accuracy after it and every earlier attack
    for threat_index in range(len(THREATS)):
        fgsm, pgd = fast.cells[2 * threat_index:2 * threat_index + 2]
        assert pgd.accuracy == fast.robust_accuracy[threat_index].accuracy
        assert fgsm.accuracy is not None and pgd.accuracy is not None
        assert pgd.accuracy <= fgsm.accuracy
        assert pgd.queries < full.cells[2 * threat_index + 1].queries


def test_curves_and_per_class(default_model: RobustModel, data: EvalData) -> None:
    result = run_audit(default_model, data, [PGD(steps=5), DeepFool(steps=10)],
                       [ThreatModel(Norm.L2, 0.5), ThreatModel(Norm.L2, 1.0)],
                       AuditSettings(show_progress=False), [])
    grid = [p for p in result.curves if p.source == "grid"]
    assert {p.attack for p in grid} == {"pgd", "deepfool", "worst case"}
    minimal = [p for p in result.curves if p.source == "minimal distances"]
    assert minimal and all(p.attack == "deepfool" and p.norm == "l2" for p in minimal)
    assert minimal[0].eps == 0.0 and minimal[0].accuracy == pytest.approx(
        result.clean_accuracy)
    accuracies = [p.accuracy for p in minimal]
    assert accuracies == sorted(accuracies, reverse=True)
    rows = [r for r in result.per_class if r.eps == 1.0]
    assert [r.class_name for r in rows] == [str(i) for i in range(10)]
    assert sum(r.n_samples for r in rows) == len(data.x)
    robust_total = sum(r.robust_accuracy * r.n_samples for r in rows)
    assert robust_total / len(data.x) == pytest.approx(result.robust_accuracy[1].accuracy)


def test_out_of_memory_halves_the_batch(default_model: RobustModel, data: EvalData,
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from robustbench_lite.engine import runner

    real = runner.attack_batch
    sizes: list[int] = []

    def flaky(attack: object, model: object, x: torch.Tensor, *args: object,
              **kwargs: object) -> object:
        sizes.append(len(x))
        if len(x) > 40:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(attack, model, x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "attack_batch", flaky)
    result = run_audit(default_model, data, [FGSM()], THREATS[:1],
                       AuditSettings(batch_size=128, show_progress=False), [])
    reference = run_audit(default_model, data, [FGSM()], THREATS[:1],
                          AuditSettings(batch_size=32, show_progress=False), [])
    assert sizes[:3] == [128, 64, 32]
    assert "retrying with batch size 64" in caplog.text
    assert result.cells[0].accuracy == reference.cells[0].accuracy
    assert result.cells[0].batch_size == 32  # what the cell finished with


def test_the_same_file_loaded_otherwise_is_not_reused(tmp_path: Path) -> None:
    """Regression: with --mean/--std, then without, into one store, the second run reused
    the first run's cells next to its own clean accuracy."""
    from robustbench_lite.api import ModelOptions
    from robustbench_lite.api import audit as api_audit

    store = tmp_path / "results.sqlite"
    kwargs = {"matrix": "quick", "n_samples": 40, "transfer": False, "checks": False,
              "examples": 0, "store": store}
    normalised = api_audit(options=ModelOptions(mean=[0.5], std=[0.25]), **kwargs)
    plain = api_audit(**kwargs)
    fresh = api_audit(**{**kwargs, "store": tmp_path / "fresh.sqlite"})
    assert [c.accuracy for c in plain.cells] == [c.accuracy for c in fresh.cells]
    assert [c.accuracy for c in plain.cells] != [c.accuracy for c in normalised.cells]
    assert all(c.accuracy is not None and c.accuracy <= plain.clean_accuracy
               for c in plain.cells)
    with ResultStore(store) as opened:
        assert len({key.model_sha256 for key in opened.keys()}) == 2  # noqa: SIM118
