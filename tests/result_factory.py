"""Hand-made `AuditResult`s for tests of what is derived from results (no model needed)."""

from __future__ import annotations

from typing import Any

from robustbench_lite.results import (
    AuditResult,
    CellResult,
    DataInfo,
    ModelInfo,
    RunInfo,
    ThreatSummary,
)


def make_cell(attack: str, norm: str, eps: float, accuracy: float | None,
              **fields: Any) -> CellResult:
    """A finished cell (``accuracy`` None: failed, unless ``fields`` say otherwise)."""
    values: dict[str, Any] = dict(
        attack=attack, params={}, norm=norm, eps=eps, targeted=False, accuracy=accuracy,
        success_rate=None, n_samples=100, mean_distance=None, max_distance=None, queries=100,
        seconds=0.1, error=None if accuracy is not None else "RuntimeError: boom")
    values.update(fields)
    return CellResult(**values)


def make_result(*, cells: list[CellResult] | None = None,
                robust_accuracy: list[ThreatSummary] | None = None,
                clean_accuracy: float = 0.97, family: str = "digits",
                **fields: Any) -> AuditResult:
    """A result over 100 ``family`` samples of 10 classes with the given parts."""
    return AuditResult(
        model=ModelInfo("digits-cnn", "0" * 64, "pt", True, "digits-cnn", 10, [1, 8, 8]),
        data=DataInfo("digits", "1" * 64, 100, "builtin", family,
                      [str(i) for i in range(10)]),
        clean_accuracy=clean_accuracy, cells=cells or [],
        robust_accuracy=robust_accuracy or [],
        run=RunInfo(0, "cpu", 128, "robust audit", "2024-01-01T00:00:00", 1.0, {}, []),
        **fields)
