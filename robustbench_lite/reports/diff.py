"""Compare two audits: clean accuracy, worst-case robust accuracy per threat model,
certified L2 accuracy (when either audit has a Lipschitz certificate) and per-cell
adversarial accuracy, before and after, with signed changes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.reports.loader import template_errors
from robustbench_lite.reports.render import environment
from robustbench_lite.results import AuditResult, CellResult, scope, threat_label
from robustbench_lite.threat import Norm

TEMPLATE = "diff.html"
COLUMNS = ["kind", "attack", "norm", "eps", "targeted", "objective", "before", "after",
           "change"]
"""``kind`` is ``clean``, ``robust`` (worst case at one threat model), ``certified`` (share of
samples the Lipschitz certificate proves robust at one L2 eps) or ``cell``; ``objective``
is None for classification and names the objective of other tasks (`results.scope`);
``before``,
``after`` and ``change`` are fractions (``change`` = after - before), NaN where missing."""

MINUS = "\N{MINUS SIGN}"
MISSING = "\N{EN DASH}"


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _change(before: float, after: float) -> float:
    return after - before if not (math.isnan(before) or math.isnan(after)) else math.nan


Threat = tuple[str, float, bool, str | None]


def _row(kind: str, attack: str, threat: Threat, before: float | None,
         after: float | None) -> dict[str, Any]:
    first, second = _number(before), _number(after)
    norm, eps, targeted, objective = threat
    return {"kind": kind, "attack": attack, "norm": norm, "eps": eps, "targeted": targeted,
            "objective": objective, "before": first, "after": second,
            "change": _change(first, second)}


def _cells_by_key(cells: Sequence[CellResult]
                  ) -> dict[tuple[str, Threat, int], CellResult]:
    """Cells keyed by (attack, threat, n): the n-th cell with that attack and threat model
    (and objective, `results.scope`), so an attack listed twice pairs up in order."""
    keyed: dict[tuple[str, Threat, int], CellResult] = {}
    for cell in cells:
        threat = (cell.norm, cell.eps, cell.targeted, scope(cell.objective))
        n = 0
        while (cell.attack, threat, n) in keyed:
            n += 1
        keyed[(cell.attack, threat, n)] = cell
    return keyed


def certified_by_eps(result: AuditResult) -> dict[float, float]:
    """Certified accuracy per L2 eps of ``result``'s certificate (empty when it has none)."""
    certificate = result.certificate
    if not certificate.get("available"):
        return {}
    return {float(entry["eps"]): float(entry["accuracy"])
            for entry in certificate.get("certified", [])}


def diff_table(before: AuditResult, after: AuditResult) -> pd.DataFrame:
    """One row for clean accuracy, one per threat model in either audit (worst case; NaN on
    the side that lacks it), one per certified L2 eps in either audit's certificate, and
    one per cell present in both (matched by attack and threat model). Columns:
    `COLUMNS`."""
    rows = [_row("clean", "", ("", math.nan, False, None), before.clean_accuracy,
                 after.clean_accuracy)]
    robust_before: dict[Threat, float] = {
        (row.norm, row.eps, row.targeted, scope(row.objective)): row.accuracy
        for row in before.robust_accuracy}
    robust_after: dict[Threat, float] = {
        (row.norm, row.eps, row.targeted, scope(row.objective)): row.accuracy
        for row in after.robust_accuracy}
    threats = list(robust_before) + [key for key in robust_after if key not in robust_before]
    for threat in threats:
        rows.append(_row("robust", "worst case", threat, robust_before.get(threat),
                         robust_after.get(threat)))
    certified_before, certified_after = certified_by_eps(before), certified_by_eps(after)
    for eps in sorted({*certified_before, *certified_after}):
        rows.append(_row("certified", "certified", (Norm.L2.value, eps, False, None),
                         certified_before.get(eps), certified_after.get(eps)))
    cells_after = _cells_by_key(after.cells)
    for key, cell in _cells_by_key(before.cells).items():
        if key in cells_after:
            rows.append(_row("cell", cell.attack, key[1], cell.accuracy,
                             cells_after[key].accuracy))
    return pd.DataFrame(rows, columns=COLUMNS)


def format_change(change: float) -> str:
    """A change of accuracy in percentage points with its sign: ``+1.2 pp``, ``\u22123.4 pp``
    (a real minus sign), ``0.0 pp``; an en dash when missing."""
    if math.isnan(change):
        return MISSING
    points = round(100 * change, 1)
    if points == 0:
        return "0.0 pp"
    return f"+{points:.1f} pp" if points > 0 else f"{MINUS}{-points:.1f} pp"


def change_class(change: float) -> str:
    """``better`` (accuracy went up), ``worse`` (down), ``same`` or ``missing``; the class
    the page colours the change with."""
    if math.isnan(change):
        return "missing"
    points = round(100 * change, 1)
    return "better" if points > 0 else "worse" if points < 0 else "same"


def format_accuracy(value: float) -> str:
    return MISSING if math.isnan(value) else f"{100 * value:.1f}%"


def format_threat(norm: str, eps: float, targeted: bool = False,
                  objective: str | None = None) -> str:
    return "" if math.isnan(eps) else threat_label(norm, eps, targeted, objective=objective)


def formatted_diff_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (from `diff_table`) as text, for printing: what, threat, before, after,
    change."""
    what = {"clean": "clean accuracy", "robust": "worst case", "certified": "certified"}
    return pd.DataFrame(
        [{"what": what.get(row.kind, row.attack),
          "threat": format_threat(row.norm, row.eps, row.targeted, row.objective),
          "before": format_accuracy(row.before), "after": format_accuracy(row.after),
          "change": format_change(row.change)} for row in table.itertuples(index=False)],
        columns=["what", "threat", "before", "after", "change"])


def metric_rows(before: AuditResult, after: AuditResult) -> list[dict[str, str]]:
    """The task's own numbers (``task.metrics``: a GAN's Fréchet distance, ...) before and
    after, with their difference."""
    names = list(dict.fromkeys([*before.task.metrics, *after.task.metrics]))
    rows = []
    for name in names:
        first = _number(before.task.metrics.get(name))
        second = _number(after.task.metrics.get(name))
        change = _change(first, second)
        rows.append({"name": name, "before": _plain(first), "after": _plain(second),
                     "change": MISSING if math.isnan(change) else f"{change:+.4g}"})
    return rows


def _plain(value: float) -> str:
    return MISSING if math.isnan(value) else f"{value:.4g}"


def render_diff_html(before: AuditResult, after: AuditResult,
                     template_dirs: Sequence[Path] = ()) -> str:
    """The comparison page of two audits; everything it shows comes from the two results.
    Template problems raise `ReportTemplateError`."""
    table = diff_table(before, after)
    rows = [{"attack": row.attack,
             "threat": format_threat(row.norm, row.eps, row.targeted, row.objective),
             "before": format_accuracy(row.before), "after": format_accuracy(row.after),
             "change": format_change(row.change), "change_class": change_class(row.change)}
            for row in table.itertuples(index=False)]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row, kind in zip(rows, table["kind"], strict=True):
        by_kind.setdefault(kind, []).append(row)
    context: dict[str, Any] = {
        "before": before,
        "after": after,
        "clean": rows[0],
        "robust_rows": by_kind.get("robust", []),
        "certified_rows": by_kind.get("certified", []),
        "cell_rows": by_kind.get("cell", []),
        "metric_rows": metric_rows(before, after),
    }
    with template_errors():
        return environment(template_dirs).get_template(TEMPLATE).render(**context)
