"""Write an audit's output files atomically: a failure never leaves a half-written file in
place of a previous good one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.atomic import atomic_write_text
from robustbench_lite.reports.render import render_html
from robustbench_lite.reports.sections import ReportSection
from robustbench_lite.results import AuditResult
from robustbench_lite.verdict import verdict


def results_document(result: AuditResult) -> dict[str, Any]:
    """The ``results.json`` object: the result's fields plus its derived ``verdict`` (not read
    back by `AuditResult.from_dict`)."""
    return {**result.to_dict(), "verdict": asdict(verdict(result))}


def write_outputs(result: AuditResult, out_dir: Path, template_dirs: Sequence[Path] = (),
                  sections: Sequence[ReportSection] = ()) -> dict[str, Path]:
    """Render everything first, then write ``report.html`` (see `render_html` for
    ``template_dirs`` and ``sections``), ``results.json`` and the CSV tables (cells,
    robust_accuracy, per_class, curves, transfer, checks) into ``out_dir``. Returns the
    paths by kind."""
    html = render_html(result, template_dirs, sections)  # notes failing plugin sections
    raw = results_document(result)
    contents = {
        "report": ("report.html", html),
        "results": ("results.json", json.dumps(raw, indent=2, allow_nan=False) + "\n"),
        "cells": ("cells.csv", result.cells_frame().to_csv(index=False)),
    }
    for table in ("robust_accuracy", "per_class", "curves", "transfer", "checks"):
        contents[table] = (f"{table}.csv", pd.DataFrame(raw[table]).to_csv(index=False))
    paths = {}
    for kind, (filename, text) in contents.items():
        path = out_dir / filename
        atomic_write_text(path, text)
        paths[kind] = path
    return paths
