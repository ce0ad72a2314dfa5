"""The report and output files: numbers match results.json, text is escaped, writes atomic."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from robustbench_lite.attacks import FGSM, PGD
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.reports import outputs
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import AuditResult
from robustbench_lite.threat import Norm, ThreatModel


@pytest.fixture(scope="module")
def result(default_model: RobustModel, digits_test: EvalData) -> AuditResult:
    threats = [ThreatModel(Norm.LINF, 0.05), ThreatModel(Norm.LINF, 0.2)]
    settings = AuditSettings(seed=0, batch_size=128, show_progress=False,
                             command="robust audit")
    return run_audit(default_model, digits_test.subset(100), [FGSM(), PGD(steps=5)], threats,
                     settings, [{"name": "robustbench_lite.builtin.attacks", "version": "0"}])


def test_results_json_round_trip(result: AuditResult, tmp_path: Path) -> None:
    paths = write_outputs(result, tmp_path)
    raw = json.loads(paths["results"].read_text())
    assert raw["schema_version"] == 4
    assert AuditResult.from_dict(raw) == result
    assert 0 <= raw["clean_accuracy"] <= 1
    assert {(c["attack"], c["norm"], c["eps"]) for c in raw["cells"]} == {
        (a, "linf", e) for a in ("fgsm", "pgd") for e in (0.05, 0.2)}
    assert [row["eps"] for row in raw["robust_accuracy"]] == [0.05, 0.2]
    assert raw["transfer"] == []
    assert raw["checks"] == []  # run_audit runs the checks it is given: none here
    assert len(raw["examples"]) == 6
    assert raw["verdict"]["clean_accuracy"] == raw["clean_accuracy"]
    assert (tmp_path / "cells.csv").read_text().startswith("attack,params,norm,eps")


def test_html_shows_the_numbers_of_results_json(result: AuditResult) -> None:
    html = render_html(result)
    assert f"{100 * result.clean_accuracy:.1f}%" in html
    for cell in result.cells:
        assert cell.accuracy is not None
        assert f"{100 * cell.accuracy:.1f}%" in html
    for row in result.robust_accuracy:
        assert f"{100 * row.accuracy:.1f}%" in html
    assert result.model.sha256 in html and result.data.sha256 in html


def test_html_is_self_contained_and_escaped(result: AuditResult) -> None:
    hostile = copy.deepcopy(result)
    hostile.model.name = "<script>alert(1)</script>"
    hostile.data.class_names[0] = "<img src=x onerror=alert(1)>"
    for row in hostile.per_class:
        if row.class_name == "0":
            row.class_name = hostile.data.class_names[0]
    hostile.run.plugins.append({"name": "<script>plugin()</script>", "version": "<b>1</b>"})
    for cell in hostile.cells:
        cell.attack = "<script>attack()</script>"
    for example in hostile.examples:
        example.true_label = example.adversarial_label = "<img src=x onerror=alert(2)>"
    html = render_html(hostile)
    assert "<script>" not in html and "<img src=x" not in html and "<b>1</b>" not in html
    for text in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;script&gt;plugin()&lt;/script&gt;",
                 "&lt;script&gt;attack()&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;",
                 "&lt;img src=x onerror=alert(2)&gt;"):
        assert text in html, text
    assert 'http-equiv="Content-Security-Policy"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


def test_failed_write_keeps_the_previous_report(result: AuditResult, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_outputs(result, tmp_path)
    before = (tmp_path / "report.html").read_text()

    def broken_render(*_: object) -> str:
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(outputs, "render_html", broken_render)
    with pytest.raises(RuntimeError):
        write_outputs(result, tmp_path)
    assert (tmp_path / "report.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells.csv", "checks.csv", "curves.csv", "per_class.csv", "report.html", "results.json",
        "robust_accuracy.csv", "transfer.csv"]


def test_report_sections_show_threats_transfer_per_class_and_cost(result: AuditResult) -> None:
    result.transfer = [
        {"source": s, "target": t, "norm": "linf", "eps": 0.2, "accuracy": a,
         "source_success": 0.5}
        for s, t, a in [("m", "m", 0.1), ("m", "<b>s</b>", 0.6), ("<b>s</b>", "m", 0.9),
                        ("<b>s</b>", "<b>s</b>", 0.2)]]
    try:
        html = render_html(result)
    finally:
        result.transfer = []
    assert "every pixel may change by at most 0.2 (about 51/255)" in html
    assert 'id="transferability"' in html and "<b>s</b>" not in html
    assert "&lt;b&gt;s&lt;/b&gt;" in html and "90.0%" in html
    assert 'id="per-class"' in html
    for row in result.per_class:
        assert f"{100 * row.robust_accuracy:.1f}%" in html
    assert f"{sum(c.queries for c in result.cells)} model queries" in html
    assert {cell.batch_size for cell in result.cells} == {128}
    cost = html[html.index('<section id="cost"'):]
    for attack in ("fgsm", "pgd"):
        queries = sum(c.queries for c in result.cells if c.attack == attack)
        assert f"<tr><td>{attack}</td><td>2</td><td>{queries}</td>" in cost
    assert "Not run (--no-transfer)." in render_html(result)


def test_only_inline_images_reach_the_page(result: AuditResult) -> None:
    from dataclasses import replace

    from robustbench_lite.reports.render import image_src

    assert image_src("data:image/png;base64,iVBORw0KGgo=") == "data:image/png;base64,iVBORw0KGgo="
    for hostile in ("https://evil.example/x.png", "//host/x.png", "javascript:alert(1)",
                    "data:text/html;base64,PHNjcmlwdD4=", "data:image/png;base64,AA\" onerror=x",
                    None, 3):
        assert image_src(hostile) == ""
    assert result.examples
    tampered = replace(result, examples=[replace(
        result.examples[0], clean_image="https://evil.example/x.png",
        adversarial_image="javascript:alert(1)", perturbation_image="//host/x.png")])
    html = render_html(tampered)
    assert "evil.example" not in html and "javascript:" not in html
    assert 'src="//host' not in html
