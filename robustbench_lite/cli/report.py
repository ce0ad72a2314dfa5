"""``robust report`` and ``robust diff``: re-render a report, or compare two audits, from
stored ``results.json`` files."""

from __future__ import annotations

from pathlib import Path

import click

from robustbench_lite.atomic import atomic_write_text
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import explain_errors
from robustbench_lite.cli.options import template_dir_option
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.reports.diff import diff_table, formatted_diff_table, render_diff_html
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import read_results

__all__ = ["diff_command", "read_results", "report_command"]

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
