"""Render an `AuditResult` to a self-contained HTML page with jinja2 (autoescape on)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from robustbench_lite.reports.loader import template_loader
from robustbench_lite.results import AuditResult

TEMPLATE = "report.html"


def environment(template_dirs: Sequence[Path] = ()) -> jinja2.Environment:
    """The jinja2 environment over ``template_dirs`` (the user's ``--template-dir`` folders,
    first match wins), then the packaged ``reports/templates``, which are also reachable as
    ``default:NAME`` (see `robustbench_lite.reports.loader`)."""
    env = jinja2.Environment(
        loader=template_loader(template_dirs),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = format_percent
    return env


def format_percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_html(result: AuditResult, template_dirs: Sequence[Path] = ()) -> str:
    """The report page for ``result``; everything it shows comes from ``result``.
    ``template_dirs`` may override any template (or one block of it, by extending
    ``default:report.html``)."""
    table = result.accuracy_table()
    context: dict[str, Any] = {
        "result": result,
        "threat_columns": list(table.columns),
        "accuracy_rows": [(attack, [row[col] for col in table.columns])
                          for attack, row in table.iterrows()],
    }
    return environment(template_dirs).get_template(TEMPLATE).render(**context)
