"""Robustness charts: one SVG data URI per norm, deterministic, inert and described in words."""

from __future__ import annotations

import base64
import html
import xml.etree.ElementTree as ET

import matplotlib
import pytest
from result_factory import make_result

from robustbench_lite.reports.charts import robustness_charts
from robustbench_lite.results import AuditResult, CurvePoint, ThreatSummary

SVG = "{http://www.w3.org/2000/svg}"
PREFIX = "data:image/svg+xml;base64,"


def audit_result(curves: list[CurvePoint]) -> AuditResult:
    """A result with nothing but a clean accuracy and ``curves``."""
    return make_result(curves=curves)


def grid(norm: str, attack: str, points: dict[float, float]) -> list[CurvePoint]:
    return [CurvePoint(norm, attack, eps, accuracy) for eps, accuracy in points.items()]


def minimal(norm: str, attack: str, largest: float) -> list[CurvePoint]:
    return [CurvePoint(norm, attack, largest * i / 4, 0.97 - 0.2 * i, "minimal distances")
            for i in range(5)]


@pytest.fixture
def result() -> AuditResult:
    return audit_result(
        grid("linf", "fgsm", {0.05: 0.8, 0.1: 0.6}) + grid("linf", "pgd", {0.05: 0.7, 0.1: 0.45})
        + grid("linf", "worst case", {0.05: 0.65, 0.1: 0.412})
        + grid("l2", "pgd", {0.5: 0.7}) + grid("l2", "worst case", {0.5: 0.7})
        + minimal("l2", "ddn", 0.75))


def svg_root(data_uri: str) -> ET.Element:
    """The decoded SVG of a chart, comments kept (matplotlib writes each text as one)."""
    assert data_uri.startswith(PREFIX)
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return ET.fromstring(base64.b64decode(data_uri[len(PREFIX):]), parser=parser)


def legend_labels(data_uri: str) -> list[str]:
    legend = svg_root(data_uri).find(f".//{SVG}g[@id='legend_1']")
    assert legend is not None
    return [html.unescape(str(node.text).strip()) for node in legend.iter()
            if node.tag is ET.Comment]  # type: ignore[comparison-overlap]


def test_one_chart_per_norm_in_the_order_of_the_threat_models(result: AuditResult) -> None:
    charts = robustness_charts(result)
    assert [chart.norm for chart in charts] == ["linf", "l2"]
    assert [chart.title for chart in charts] == ["Linf: accuracy against eps",
                                                 "L2: accuracy against eps"]
    for chart in charts:
        assert svg_root(chart.data_uri).tag == f"{SVG}svg"
    result.robust_accuracy = [ThreatSummary("l2", 0.5, 0.7, []),
                              ThreatSummary("linf", 0.1, 0.4, [])]
    assert [chart.norm for chart in robustness_charts(result)] == ["l2", "linf"]


def test_no_curve_points_no_charts(result: AuditResult) -> None:
    result.curves = []
    assert robustness_charts(result) == []


def test_output_is_deterministic_and_leaves_global_settings_alone(
        result: AuditResult) -> None:
    settings = dict(matplotlib.rcParams)
    first = robustness_charts(result)
    assert robustness_charts(result) == first
    with matplotlib.rc_context({"lines.linewidth": 7, "font.size": 20}):
        assert robustness_charts(result) == first
    assert dict(matplotlib.rcParams) == settings


def test_worst_case_is_first_in_the_legend(result: AuditResult) -> None:
    linf, l2 = robustness_charts(result)
    assert legend_labels(linf.data_uri) == ["worst case", "fgsm", "pgd", "clean accuracy 97.0%"]
    assert legend_labels(l2.data_uri) == ["worst case", "pgd", "ddn (minimal distances)",
                                          "clean accuracy 97.0%"]


def test_alt_text_states_the_worst_case(result: AuditResult) -> None:
    linf, l2 = robustness_charts(result)
    assert linf.alt == ("Accuracy against Linf eps for fgsm, pgd and the worst case; clean "
                        "accuracy 97.0%; worst case 65.0% at eps 0.05, 41.2% at eps 0.1")
    assert "ddn (minimal distances)" in l2.alt and "worst case 70.0% at eps 0.5" in l2.alt


def test_hostile_attack_names_render_as_inert_text() -> None:
    name = "<script>alert(1)</script> $x$"
    (chart,) = robustness_charts(audit_result(
        grid("linf", name, {0.1: 0.5}) + grid("linf", "worst case", {0.1: 0.5})
        + minimal("linf", name, 0.2)))
    root = svg_root(chart.data_uri)
    svg = base64.b64decode(chart.data_uri[len(PREFIX):]).decode()
    assert not any(str(node.tag).lower().endswith("script") for node in root.iter())
    assert "<script" not in svg.lower()
    assert legend_labels(chart.data_uri)[1:3] == [name, f"{name} (minimal distances)"]
    assert "Oblique" not in svg  # "$x$" as mathtext would draw an italic x
    assert name in chart.alt


def test_long_attack_names_are_cut_in_the_legend_only() -> None:
    name = "x" * 500
    (chart,) = robustness_charts(audit_result(grid("l1", name, {5.0: 0.5})))
    label = legend_labels(chart.data_uri)[0]
    assert label.endswith("\u2026") and len(label) < 100
    assert name in chart.alt
