"""Render an `AuditResult` to a self-contained HTML page with jinja2 (autoescape on)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from robustbench_lite.errors import ReportTemplateError
from robustbench_lite.gan.task import SUCCESS_WORDS as OBJECTIVE_WORDS
from robustbench_lite.reports.bidi import neutralise_bidi
from robustbench_lite.reports.charts import robustness_charts
from robustbench_lite.reports.loader import template_errors, template_loader
from robustbench_lite.reports.sections import ReportSection, section_data, section_template_dirs
from robustbench_lite.reports.stub import stub_result
from robustbench_lite.results import AuditResult, PerClassRow, scope, threat_label
from robustbench_lite.threat import norm_label, targeted_prefix
from robustbench_lite.verdict import verdict

TEMPLATE = "report.html"


def environment(template_dirs: Sequence[Path] = (),
                plugin_dirs: Sequence[Path] = ()) -> jinja2.Environment:
    """The jinja2 environment over ``template_dirs`` (the user's ``--template-dir`` folders,
    first match wins), then ``plugin_dirs`` (report-section plugins), then the packaged
    ``reports/templates``, which are also reachable as ``default:NAME`` (see
    `robustbench_lite.reports.loader`)."""
    env = jinja2.Environment(
        loader=template_loader(template_dirs, plugin_dirs=plugin_dirs),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=neutralise_bidi,  # every {{ value }}: no hidden right-to-left overrides
    )
    env.filters["pct"] = format_percent
    env.filters["num"] = format_number
    env.filters["heat"] = heat_style
    env.filters["norm"] = norm_label
    env.filters["details"] = format_details
    env.filters["image_src"] = image_src
    env.globals["threat_label"] = threat_label
    env.globals["targeted_prefix"] = targeted_prefix
    return env


#: How the report shows a number that is not a number (NaN, recorded as such).
NOT_A_NUMBER = "n/a"


def format_percent(value: float | None) -> str:
    """A fraction as a percentage: ``97.0%``; ``-`` for None, `NOT_A_NUMBER` for NaN,
    ``inf%`` for infinity."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return NOT_A_NUMBER
    return f"{100 * value:.1f}%"


def format_number(value: float | None, spec: str = ".4g") -> str:
    """``value`` formatted with ``spec`` (``inf`` and ``-inf`` for infinities); an en dash
    for None, `NOT_A_NUMBER` for NaN."""
    if value is None:
        return "\N{EN DASH}"
    if isinstance(value, float) and math.isnan(value):
        return NOT_A_NUMBER
    return format(value, spec)


#: The only image sources a report shows: inline PNG, JPEG or GIF data (a tampered
#: results.json cannot make the page load anything).
_IMAGE_SOURCE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=]*\Z")


def image_src(value: object) -> str:
    """``value`` when it is an inline base64 image, else an empty source."""
    return value if isinstance(value, str) and _IMAGE_SOURCE.match(value) else ""


def format_details(details: dict[str, Any]) -> str:
    """A check's numbers on one line: ``zero_share=0.5, samples=64``."""
    return ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in details.items())


NORM_WORDS = {
    "linf": "every pixel may change by at most {eps} (L-infinity norm)",
    "l2": "the perturbation's Euclidean length (L2 norm) is at most {eps}",
    "l1": "the sum of absolute pixel changes (L1 norm) is at most {eps}",
    "semantic": ("no pixel budget: a style generator re-draws the image, keeping its coarse, "
                 "label-relevant styles (the digit's shape) and choosing its fine, "
                 "label-irrelevant ones (colour) with their latent z in a box of {eps} prior "
                 "standard deviations; a change a person would call the same digit in "
                 "another colour, as far as the generator separates the two"),
}


TARGET_WORDS = {
    "random": "a wrong class drawn at random for each sample",
    "next-likely": "each sample's most likely wrong class on the clean image",
    "least-likely": "each sample's least likely class on the clean image",
}


LATENT_WORDS = {
    "linf": "each latent coordinate may move by at most {eps} prior standard deviations "
            "(L-infinity norm; w is standardised by its measured spread)",
    "l2": "the latent change's Euclidean length (L2 norm) is at most {eps} prior standard "
          "deviations (w is standardised by its measured spread)",
}


def describe_threat(norm: str, eps: float, targeted: bool = False,
                    target_mode: str | None = None, objective: str | None = None) -> str:
    """A threat model in words a reviewer understands (pixels are in [0, 1]; a GAN's
    latent objectives move latents, in prior standard deviations)."""
    named = scope(objective)
    if named is not None:
        latent = named.startswith("latent-")
        amount = f"{eps:g}" + (f" (about {eps * 255:.3g}/255)" if norm == "linf" and
                               not latent else "")
        table = LATENT_WORDS if latent else NORM_WORDS
        words = table.get(norm, norm + " norm at most {eps}").format(eps=amount)
        return f"{words}; success: {OBJECTIVE_WORDS.get(named, named + ' reached')}"
    amount = f"{eps:g}" + (f" (about {eps * 255:.3g}/255)" if norm == "linf" else "")
    words = NORM_WORDS.get(norm, norm + " norm at most {eps}").format(eps=amount)
    if targeted:
        mode = target_mode or "random"
        target = TARGET_WORDS.get(mode, f"class {mode} (samples of that class are not "
                                        "attacked)")
        return (words + f"; targeted: the audit chose the target, {target}, and the attack "
                "succeeds only if the model outputs it. Accuracy counts samples still "
                "classified correctly; success rate the attacked samples put in their target")
    return words + "; any wrong label counts as a success"


def per_class_grid(result: AuditResult) -> dict[str, Any]:
    """The per-class table: one column per threat model of ``result.robust_accuracy``, one
    row ``(class name, samples, clean accuracy, [robust accuracy or None per column])`` per
    class with samples."""
    columns = [(row.norm, row.eps, row.targeted, row.target_mode)
               for row in result.robust_accuracy]
    cells: dict[str, dict[tuple[str, float, bool, str | None], float]] = {}
    first: dict[str, PerClassRow] = {}
    for row in result.per_class:
        first.setdefault(row.class_name, row)
        cells.setdefault(row.class_name, {})[
            (row.norm, row.eps, row.targeted, row.target_mode)] = row.robust_accuracy
    rows = [(name, first[name].n_samples, first[name].clean_accuracy,
             [cells[name].get(column) for column in columns])
            for name in result.data.class_names if name in first]
    return {"columns": [threat_label(*column) for column in columns], "rows": rows}


def heat_style(value: float | None) -> str:
    """Inline background colour for an accuracy: red at 0, amber at 0.5, green at 1."""
    if value is None or value != value:
        return ""
    hue = round(120 * max(0.0, min(1.0, value)))
    return f"background-color: hsl({hue}, 70%, 85%)"


def transfer_grids(result: AuditResult) -> list[dict[str, Any]]:
    """One source x target grid of accuracies per threat model of the transfer table."""
    grids: dict[tuple[str, float], dict[str, Any]] = {}
    for row in result.transfer:
        grid = grids.setdefault((row["norm"], row["eps"]), {
            "norm": row["norm"], "eps": row["eps"], "sources": [], "targets": [], "values": {}})
        for key, name in (("sources", row["source"]), ("targets", row["target"])):
            if name not in grid[key]:
                grid[key].append(name)
        grid["values"][(row["source"], row["target"])] = row["accuracy"]
    return list(grids.values())


def cost_rows(result: AuditResult) -> list[dict[str, Any]]:
    """Queries and attack time per attack over all its cells, most expensive first."""
    frame = result.cells_frame()
    if frame.empty:
        return []
    totals = frame.groupby("attack", sort=False).agg(
        cells=("attack", "size"), queries=("queries", "sum"), seconds=("seconds", "sum"))
    total = float(totals["seconds"].sum())
    totals["share"] = totals["seconds"] / total if total > 0 else 0.0
    return [{"attack": attack, **row} for attack, row in
            totals.sort_values("seconds", ascending=False, kind="stable").to_dict("index").items()]


def check_templates(template_dirs: Sequence[Path] = (),
                    sections: Sequence[ReportSection] = ()) -> None:
    """Load and compile the report template and every section template, then render the
    report on a made-up result with every optional part (`stub.stub_result`), so a broken
    ``--template-dir`` (a syntax error, or an error at render time such as ``{{ 1/0 }}``)
    fails before an audit runs; `ReportTemplateError` otherwise. (A plugin section that
    fails on the made-up result is shown as failed there, as in a real report.)"""
    env = environment(template_dirs, section_template_dirs(sections))
    with template_errors():
        for name in [TEMPLATE, *(section.template for section in sections)]:
            env.get_template(name)
    render_html(stub_result(), template_dirs, sections)


def _render_failure(name: str, exc: Exception) -> ReportTemplateError:
    """One line for an exception raised while rendering the template ``name``: its type,
    message and, where the traceback shows it, the template file and line at fault."""
    where = ""
    trace = exc.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            where = f" (at {filename}, line {trace.tb_lineno})"
        trace = trace.tb_next
    detail = " ".join(str(exc).split())[:300]
    return ReportTemplateError(f"template {name} failed to render: {type(exc).__name__}: "
                               f"{detail}{where}; fix the template")


def render_sections(env: jinja2.Environment, sections: Sequence[ReportSection],
                    result: AuditResult) -> dict[str, Markup]:
    """Each plugin section rendered on its own. A section whose data or template fails
    shows its one-line reason instead, and the reason is noted in ``result`` (stage
    ``report``); the rest of the report is unaffected."""
    rendered = {}
    for section in sections:
        try:
            body = env.get_template(section.template).render(
                result=result, section=section, data=section_data([section], result)[
                    section.name])
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ReportTemplateError) else \
                f"{type(exc).__name__}: {exc}"
            reason = " ".join(reason.split())
            if not any(n.stage == "report" and n.subject == section.name
                       for n in result.notes):
                result.note("report", section.name, "failed", reason)
            body = Markup('<p class="bad">This section could not be shown: {}</p>').format(
                reason)
        rendered[section.name] = Markup(body)
    return rendered


def render_html(result: AuditResult, template_dirs: Sequence[Path] = (),
                sections: Sequence[ReportSection] = ()) -> str:
    """The report page for ``result``; everything it shows comes from ``result``.
    ``template_dirs`` may override any template (or one block of it, by extending
    ``default:report.html``); ``sections`` are plugin sections, each rendered on its own
    (`render_sections`). Problems of the report's own templates raise
    `ReportTemplateError`."""
    table = result.accuracy_table()
    env = environment(template_dirs, section_template_dirs(sections))
    with template_errors():
        section_html = render_sections(env, sections, result)
    context: dict[str, Any] = {
        "result": result,
        "verdict": verdict(result),
        "threats": [(threat_label(row.norm, row.eps, row.targeted, row.target_mode,
                                  row.objective),
                     describe_threat(row.norm, row.eps, row.targeted, row.target_mode,
                                     row.objective))
                    for row in result.robust_accuracy],
        "per_class": per_class_grid(result),
        "charts": robustness_charts(result),
        "transfer_grids": transfer_grids(result),
        "threat_columns": list(table.columns),
        "accuracy_rows": [(attack, [row[col] for col in table.columns])
                          for attack, row in table.iterrows()],
        "cost_rows": cost_rows(result),
        "sections": list(sections),
        "section_html": section_html,
    }
    with template_errors():
        template = env.get_template(TEMPLATE)
    try:
        return template.render(**context)
    except Exception as exc:
        raise _render_failure(TEMPLATE, exc) from exc
