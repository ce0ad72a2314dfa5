"""Write an audit's output files atomically: a failure never leaves a half-written file in
place of a previous good one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.file_set import write_file_set
from robustbench_lite.reports.render import render_html
from robustbench_lite.reports.sections import ReportSection
from robustbench_lite.results import AuditResult
from robustbench_lite.results_schema import dumps
from robustbench_lite.verdict import verdict


def results_document(result: AuditResult) -> dict[str, Any]:
    """The ``results.json`` object: the result's fields plus its derived ``verdict`` (not read
    back by `AuditResult.from_dict`)."""
    return {**result.to_dict(), "verdict": asdict(verdict(result))}


def write_outputs(result: AuditResult, out_dir: Path, template_dirs: Sequence[Path] = (),
                  sections: Sequence[ReportSection] = ()) -> dict[str, Path]:
    """Render everything first, then write ``report.html`` (see `render_html` for
    ``template_dirs`` and ``sections``), ``results.json`` and the CSV tables (cells,
    robust_accuracy, per_class, curves, transfer, checks) into ``out_dir`` as one set
    (`write_file_set`: all replaced together or none). Returns the paths by kind.
    ``results.json`` is strict JSON: a non-finite float is written as the string ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``; the CSV tables leave NaN (like None) empty and write
    infinities as ``inf``, as pandas reads them back."""
    html = render_html(result, template_dirs, sections)  # notes failing plugin sections
    raw = results_document(result)
    contents = {
        "report": ("report.html", html),
        "results": ("results.json", dumps(raw)),  # non-finite floats as "NaN", "Infinity"
        "cells": ("cells.csv", result.cells_frame().to_csv(index=False)),
    }
    for table in ("robust_accuracy", "per_class", "curves", "transfer", "checks"):
        contents[table] = (f"{table}.csv", pd.DataFrame(raw[table]).to_csv(index=False))
    written = write_file_set(out_dir, dict(contents.values()))
    return {kind: written[filename] for kind, (filename, _) in contents.items()}
