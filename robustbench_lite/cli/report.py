"""``robust report`` and ``robust diff``: re-render a report, or compare two audits, from
stored ``results.json`` files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from robustbench_lite.atomic import atomic_write_text
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import explain_errors
from robustbench_lite.cli.options import template_dir_option
from robustbench_lite.errors import ResultsFileError
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.reports.diff import diff_table, formatted_diff_table, render_diff_html
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    AuditResult,
    CellResult,
    DataInfo,
    ModelInfo,
    RunInfo,
    ThreatSummary,
)

_NESTED: dict[str, tuple[type[Any], bool]] = {
    "model": (ModelInfo, False),
    "data": (DataInfo, False),
    "run": (RunInfo, False),
    "cells": (CellResult, True),
    "robust_accuracy": (ThreatSummary, True),
}


def _required(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def _check_object(raw: Any, cls: type[Any], where: str, path: Path) -> None:
    if not isinstance(raw, dict):
        raise ResultsFileError(f"{path}: field {where!r} is not an object")
    for name in _required(cls):
        if name not in raw:
            field = f"{where}.{name}" if where else name
            raise ResultsFileError(f"{path} is missing the field {field!r}; it is not a "
                                   "complete results.json of robust audit")


def read_results(path: Path) -> AuditResult:
    """The `AuditResult` stored in ``path``; `ResultsFileError` (one line, naming the file and
    the problem) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsFileError(f"{path} is a folder; pass its results.json") from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path} is not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg})") from None
    if not isinstance(raw, dict):
        raise ResultsFileError(f"{path} is not a results.json: expected a JSON object")
    if "schema_version" not in raw:
        raise ResultsFileError(f"{path} has no schema_version; it is not a results.json of "
                               "robust audit")
    version = raw["schema_version"]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise ResultsFileError(
            f"{path} has schema_version {version!r}, but this version of robustbench_lite "
            f"reads only {readable}" + ("; it was written by a newer version: upgrade "
                                        "robustbench_lite" if newer else ""))
    _check_object(raw, AuditResult, "", path)
    for name, (cls, is_list) in _NESTED.items():
        if not is_list:
            _check_object(raw[name], cls, name, path)
            continue
        if not isinstance(raw[name], list):
            raise ResultsFileError(f"{path}: field {name!r} is not a list")
        for index, item in enumerate(raw[name]):
            _check_object(item, cls, f"{name}[{index}]", path)
    try:
        return AuditResult.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsFileError(f"{path} is not a valid results.json: "
                               f"{type(exc).__name__}: {exc}") from None


_output = click.option("-o", "--output", "output", required=True,
                       type=click.Path(dir_okay=False, writable=True, path_type=Path),
                       help="The HTML file to write (replaced atomically).")
_results = click.Path(dir_okay=True, path_type=Path)


@click.command("report")
@click.argument("results_json", type=_results)
@_output
@template_dir_option
@explain_errors
def report_command(results_json: Path, output: Path, template_dirs: tuple[Path, ...]) -> None:
    """Re-render the HTML report of an audit from its RESULTS_JSON.

    \b
    Examples:
      robust report audit-out/results.json -o report.html
      robust report audit-out/results.json -o report.html --template-dir ./our-templates

    \b
    ./our-templates/report.html can replace one block and keep the rest:
      {% extends "default:report.html" %}
      {% block verdict %}<p>Reviewed by the model-risk team.</p>{% endblock %}
    """
    result = read_results(results_json)
    html = render_html(result, template_dirs, catalogue_for(
        default_plugin_manager()).report_sections_for(result.task.name))
    atomic_write_text(output, html)
    click.echo(f"Report written to {output}", err=True)


@click.command("diff")
@click.argument("before_json", type=_results)
@click.argument("after_json", type=_results)
@_output
@template_dir_option
@explain_errors
def diff_command(before_json: Path, after_json: Path, output: Path,
                 template_dirs: tuple[Path, ...]) -> None:
    """Compare two audits: write a comparison page and print the changes.

    Shows clean accuracy, worst-case robust accuracy per threat model, certified L2
    accuracy (when either audit has a Lipschitz certificate) and the adversarial accuracy
    of every cell both audits ran, before and after, with the change in percentage points
    (positive: more accurate after).

    \b
    Examples:
      robust diff old/results.json new/results.json -o diff.html
      robust diff old/results.json new/results.json -o diff.html --template-dir ./ours
    """
    before = read_results(before_json)
    after = read_results(after_json)
    html = render_diff_html(before, after, template_dirs)
    atomic_write_text(output, html)
    click.echo(formatted_diff_table(diff_table(before, after)).to_string(index=False))
    click.echo(f"Comparison written to {output}", err=True)
