"""``robust report`` and ``robust diff``: re-render from results.json, template overrides,
one-line errors on bad input, and the comparison page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from result_factory import make_cell, make_result

from robustbench_lite.attacks import FGSM, PGD
from robustbench_lite.cli.report import diff_command, report_command
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.reports.diff import diff_table, format_change, render_diff_html
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.results import AuditResult, ThreatSummary
from robustbench_lite.threat import Norm, ThreatModel

PLUGINS: list[dict[str, str | None]] = [{"name": "robustbench_lite.builtin", "version": "0"}]


@pytest.fixture(scope="module")
def before(default_model: RobustModel, digits_test: EvalData) -> AuditResult:
    return run_audit(default_model, digits_test.subset(40), [FGSM(), PGD()],
                     [ThreatModel(Norm.LINF, 0.1)], AuditSettings(show_progress=False), PLUGINS)


@pytest.fixture(scope="module")
def after(default_model: RobustModel, digits_test: EvalData) -> AuditResult:
    """A weaker attack set (FGSM only) at 0.1, plus a threat model ``before`` lacks."""
    return run_audit(default_model, digits_test.subset(40), [FGSM()],
                     [ThreatModel(Norm.LINF, 0.1), ThreatModel(Norm.LINF, 0.05)],
                     AuditSettings(show_progress=False), PLUGINS)


@pytest.fixture
def written(before: AuditResult, tmp_path: Path) -> dict[str, Path]:
    return write_outputs(before, tmp_path / "audit")


def test_report_re_renders_the_original_report(written: dict[str, Path],
                                               tmp_path: Path) -> None:
    out = tmp_path / "again.html"
    run = CliRunner().invoke(report_command, [str(written["results"]), "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert out.read_text(encoding="utf-8") == written["report"].read_text(encoding="utf-8")


def test_template_dir_overrides_one_block(written: dict[str, Path], before: AuditResult,
                                          tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "report.html").write_text('{% extends "default:report.html" %}'
                                      "{% block verdict %}<p>ORG VERDICT</p>{% endblock %}")
    out = tmp_path / "ours.html"
    run = CliRunner().invoke(report_command, [str(written["results"]), "-o", str(out),
                                              "--template-dir", str(ours)])
    assert run.exit_code == 0, run.output
    html = out.read_text(encoding="utf-8")
    assert "<p>ORG VERDICT</p>" in html
    assert 'id="verdict"' not in html
    assert 'id="adversarial-accuracy"' in html and 'id="reproducibility"' in html
    assert before.model.sha256 in html
    assert html.startswith("<!DOCTYPE html>")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("not json", "is not JSON"),
    ("schema 99", "written by a newer version"),
    ("no cells", "missing the field 'cells'"),
    ("no model sha", "missing the field 'model.sha256'"),
])
def test_bad_results_file_is_one_error_line(case: str, expected: str, written: dict[str, Path],
                                            tmp_path: Path) -> None:
    raw = json.loads(written["results"].read_text(encoding="utf-8"))
    source = tmp_path / "results.json"
    if case == "not json":
        _write(source, "<html>not json</html>")
    elif case == "schema 99":
        _write(source, json.dumps({**raw, "schema_version": 99}))
    elif case == "no cells":
        del raw["cells"]
        _write(source, json.dumps(raw))
    elif case == "no model sha":
        del raw["model"]["sha256"]
        _write(source, json.dumps(raw))
    out = tmp_path / "out.html"
    run = CliRunner().invoke(report_command, [str(source), "-o", str(out)])
    assert run.exit_code == 1
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.output
    assert expected in lines[0]
    assert not out.exists()


def test_diff_shows_signed_changes(before: AuditResult, after: AuditResult,
                                   tmp_path: Path) -> None:
    before_path = write_outputs(before, tmp_path / "before")["results"]
    after_path = write_outputs(after, tmp_path / "after")["results"]
    out = tmp_path / "diff.html"
    run = CliRunner().invoke(diff_command, [str(before_path), str(after_path), "-o", str(out)])
    assert run.exit_code == 0, run.output
    table = diff_table(before, after)
    assert list(table["kind"]) == ["clean", "robust", "robust", "cell"]
    worst = table[table["kind"] == "robust"].set_index("eps")
    assert worst.loc[0.1, "before"] == before.robust_accuracy[0].accuracy
    assert worst.loc[0.1, "after"] == after.robust_accuracy[0].accuracy
    assert worst.loc[0.05, "before"] != worst.loc[0.05, "before"]  # only in after: NaN
    html = out.read_text(encoding="utf-8")
    # FGSM alone is weaker than FGSM and PGD: the worst case at 0.1 looks better after
    assert worst.loc[0.1, "change"] > 0
    change = format_change(float(worst.loc[0.1, "change"]))
    assert change.startswith("+") and change.endswith(" pp")
    assert f'<td class="better">{change}</td>' in html and change in run.output
    assert before.model.name in html and before.model.sha256 in html
    assert "\N{EN DASH}" in html
    assert "clean accuracy" in run.output and "worst case" in run.output


def test_change_format() -> None:
    assert format_change(0.012) == "+1.2 pp"
    assert format_change(-0.034) == "\N{MINUS SIGN}3.4 pp"
    assert format_change(0.0) == "0.0 pp"
    assert format_change(float("nan")) == "\N{EN DASH}"


def test_diff_page_marks_better_and_worse_and_escapes(before: AuditResult,
                                                      after: AuditResult) -> None:
    raw = after.to_dict()
    raw["model"]["name"] = "<script>alert(1)</script>"
    raw["clean_accuracy"] = before.clean_accuracy + 0.1
    raw["robust_accuracy"][0]["accuracy"] = before.robust_accuracy[0].accuracy - 0.05
    html = render_diff_html(before, AuditResult.from_dict(raw))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<td class="better">+10.0 pp</td>' in html
    assert '<td class="worse">\N{MINUS SIGN}5.0 pp</td>' in html


def test_diff_keeps_targeted_and_untargeted_apart() -> None:
    def audit(untargeted: float, targeted: float) -> AuditResult:
        return make_result(
            cells=[make_cell("pgd", "linf", 0.1, untargeted),
                   make_cell("pgd", "linf", 0.1, targeted, targeted=True)],
            robust_accuracy=[ThreatSummary("linf", 0.1, untargeted, ["pgd"]),
                             ThreatSummary("linf", 0.1, targeted, ["pgd"], targeted=True)])

    table = diff_table(audit(0.4, 0.2), audit(0.5, 0.1))
    changes = {(row.kind, bool(row.targeted)): round(row.change, 6)
               for row in table.itertuples() if row.kind != "clean"}
    assert changes == {("robust", False): 0.1, ("robust", True): -0.1,
                       ("cell", False): 0.1, ("cell", True): -0.1}
    html = render_diff_html(audit(0.4, 0.2), audit(0.5, 0.1))
    assert "targeted Linf 0.1" in html


def test_diff_compares_certified_accuracy() -> None:
    def audit(certificate: dict[str, object]) -> AuditResult:
        return make_result(cells=[make_cell("pgd", "l2", 0.5, 0.4)],
                           robust_accuracy=[ThreatSummary("l2", 0.5, 0.4, ["pgd"])],
                           certificate=certificate)

    plain = audit({"available": False, "reason": "the bound needs Python modules"})
    certified = audit({"available": True, "lipschitz": 12.5, "median_radius": 0.2,
                       "certified": [{"eps": 0.1, "accuracy": 0.55},
                                     {"eps": 0.5, "accuracy": 0.05}]})
    table = diff_table(plain, certified)
    rows = table[table["kind"] == "certified"].set_index("eps")
    assert list(rows.index) == [0.1, 0.5]
    assert rows.loc[0.1, "before"] != rows.loc[0.1, "before"]  # no certificate before: NaN
    assert rows.loc[0.1, "after"] == 0.55
    html = render_diff_html(plain, certified)
    assert 'id="certified"' in html and "12.5" in html
    assert "unavailable: the bound needs Python modules" in html
    assert "<td>L2 0.1</td><td>\N{EN DASH}</td><td>55.0%</td>" in html
    both = diff_table(certified, certified)
    assert list(both[both["kind"] == "certified"]["change"]) == [0.0, 0.0]
