"""Render an `AuditResult` to a self-contained HTML page with jinja2 (autoescape on)."""

from __future__ import annotations

from typing import Any

import jinja2

from robustbench_lite.results import AuditResult

TEMPLATE = "report.html"


def environment() -> jinja2.Environment:
    """The jinja2 environment over the packaged ``reports/templates``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("robustbench_lite", "reports/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = format_percent
    return env


def format_percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_html(result: AuditResult) -> str:
    """The report page for ``result``; everything it shows comes from ``result``."""
    table = result.accuracy_table()
    context: dict[str, Any] = {
        "result": result,
        "threat_columns": list(table.columns),
        "accuracy_rows": [(attack, [row[col] for col in table.columns])
                          for attack, row in table.iterrows()],
    }
    return environment().get_template(TEMPLATE).render(**context)
