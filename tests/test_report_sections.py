"""Report sections: the built-in ones in page order, plugin sections through
``register_report_sections``, and ``--template-dir`` on ``robust audit``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from result_factory import make_cell, make_result

import robustbench_lite
from robustbench_lite.catalogue import build_catalogue
from robustbench_lite.cli import cli
from robustbench_lite.errors import PluginError, ReportTemplateError
from robustbench_lite.plugin_host import get_plugin_manager
from robustbench_lite.reports.render import check_templates, render_html
from robustbench_lite.reports.sections import BUILTIN_SECTIONS, ReportSection
from robustbench_lite.results import AuditResult, ThreatSummary

TEMPLATES = Path(robustbench_lite.__file__).parent / "reports" / "templates"


@pytest.fixture
def result() -> AuditResult:
    return make_result(cells=[make_cell("pgd", "linf", 0.1, 0.41)],
                       robust_accuracy=[ThreatSummary("linf", 0.1, 0.41, ["pgd"])])


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def section_plugin(*sections: ReportSection) -> ModuleType:
    module = ModuleType("report_section_plugin")

    def register_report_sections(register: Callable[[Any], None]) -> None:
        for section in sections:
            register(section)

    module.register_report_sections = robustbench_lite.hookimpl(  # type: ignore[attr-defined]
        register_report_sections)
    return module


def registered(*sections: ReportSection) -> list[ReportSection]:
    manager = get_plugin_manager(load_entrypoints=False,
                                 extra_plugins=(section_plugin(*sections),))
    return build_catalogue(manager).report_sections.values()


def template_dir(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / f"templates-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_builtin_sections_are_in_page_order(result: AuditResult) -> None:
    assert section_ids(render_html(result)) == list(BUILTIN_SECTIONS)
    source = (TEMPLATES / "report.html").read_text()
    assert re.findall(r'extra_sections\("([^"]+)"\)', source) == list(BUILTIN_SECTIONS)


def test_plugin_section_renders_after_its_section_with_escaped_data(
        result: AuditResult, tmp_path: Path) -> None:
    folder = template_dir(tmp_path, "acme_section.html",
                          "<p>{{ data.note }} for {{ result.model.name }}: "
                          "{{ result.robust_accuracy[0].accuracy | pct }}</p>")

    def data(result: AuditResult) -> Mapping[str, Any]:
        return {"note": "<script>alert(1)</script>"}

    sections = registered(ReportSection("acme-review", "ACME <review>", "acme_section.html",
                                        folder, after="verdict", data=data))
    html = render_html(result, sections=sections)
    ids = section_ids(html)
    assert ids[ids.index("verdict") + 1] == "acme-review"
    assert "<h2>ACME &lt;review&gt;</h2>" in html
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt; for digits-cnn: 41.0%</p>" in html
    assert "<script>" not in html


def test_a_user_template_dir_overrides_a_plugin_section_template(
        result: AuditResult, tmp_path: Path) -> None:
    folder = template_dir(tmp_path, "acme_section.html", "<p>plugin text</p>")
    ours = template_dir(tmp_path / "ours", "acme_section.html", "<p>our text</p>")
    sections = registered(ReportSection("acme", "ACME", "acme_section.html", folder))
    assert "<p>plugin text</p>" in render_html(result, sections=sections)
    html = render_html(result, [ours], sections)
    assert "<p>our text</p>" in html and "plugin text" not in html


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Bad Name"}, "must be lowercase letters"),
    ({"name": "verdict"}, "not a built-in section"),
    ({"after": "nowhere"}, "after='nowhere' is not a built-in section"),
])
def test_invalid_sections_are_plugin_errors(tmp_path: Path, kwargs: dict[str, str],
                                            message: str) -> None:
    def bad(register: Callable[[Any], None]) -> None:
        register(ReportSection(**{"name": "ok", "title": "t", "template": "t.html",
                                  "template_dir": tmp_path, **kwargs}))

    module = ModuleType("bad_sections")
    module.register_report_sections = robustbench_lite.hookimpl(bad)  # type: ignore[attr-defined]
    manager = get_plugin_manager(load_entrypoints=False, extra_plugins=(module,))
    with pytest.raises(PluginError, match=f"plugin 'bad_sections' failed in "
                                          f"register_report_sections: ValueError: .*{message}"):
        build_catalogue(manager)


def test_duplicate_names_and_wrong_types_name_the_plugin(tmp_path: Path) -> None:
    section = ReportSection("acme", "ACME", "a.html", tmp_path)
    with pytest.raises(PluginError, match="report section name 'acme' is registered twice"):
        registered(section, section)
    with pytest.raises(PluginError, match="it is not a ReportSection"):
        registered("not a section")  # type: ignore[arg-type]


def test_section_problems_are_one_line_errors(result: AuditResult, tmp_path: Path) -> None:
    one = template_dir(tmp_path / "one", "same.html", "one")
    two = template_dir(tmp_path / "two", "same.html", "two")
    clash = [ReportSection("first", "1", "same.html", one),
             ReportSection("second", "2", "same.html", two)]
    with pytest.raises(ReportTemplateError, match=r"'first' and 'second' both use a template "
                                                  r"named 'same\.html'"):
        render_html(result, sections=clash)

    def broken(result: AuditResult) -> Mapping[str, Any]:
        raise KeyError("cells")

    failing = [ReportSection("acme", "ACME", "same.html", one, data=broken)]
    html = render_html(result, sections=failing)  # one failure policy: noted, report kept
    assert "This section could not be shown: report section &#39;acme&#39; failed" in html
    assert [(n.stage, n.subject, n.status) for n in result.notes] == [
        ("report", "acme", "failed")]
    assert "KeyError" in result.notes[0].reason
    render_html(result, sections=failing)
    assert len(result.notes) == 1  # a re-render does not repeat the note
    missing = [ReportSection("acme", "ACME", "missing.html", one)]
    with pytest.raises(ReportTemplateError, match=r"template not found: missing\.html"):
        check_templates((), missing)
    bad = template_dir(tmp_path, "bad.html", "{% if %}")
    with pytest.raises(ReportTemplateError, match=r"template .*bad.html, line 1"):
        check_templates((), [ReportSection("acme", "ACME", "bad.html", bad)])


AUDIT = ("audit", "--matrix", "quick", "--n-samples", "20", "--no-transfer", "--examples",
         "2", "-q")


def test_audit_template_dir_replaces_one_block(tmp_path: Path) -> None:
    ours = template_dir(tmp_path, "report.html",
                        '{% extends "default:report.html" %}'
                        "{% block verdict %}<p>Reviewed by the model-risk team.</p>"
                        "{% endblock %}")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*AUDIT, "--out", str(out), "--template-dir", str(ours)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "<p>Reviewed by the model-risk team.</p>" in html
    assert 'id="verdict"' not in html and 'id="examples"' in html


def test_audit_with_a_broken_template_fails_before_attacking(tmp_path: Path) -> None:
    ours = template_dir(tmp_path, "report.html", "{% block verdict %}")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*AUDIT, "--out", str(out), "--template-dir", str(ours)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: template ")
    assert "report.html, line 1" in result.stderr and "Traceback" not in result.output
    assert not out.exists()
