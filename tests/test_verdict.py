"""The verdict: headline threat models, strongest attack, sanity status and gates, and the
report's verdict section showing exactly those numbers."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from result_factory import make_cell, make_result

from robustbench_lite.checks.base import CheckContext
from robustbench_lite.checks.cells import EveryCellRan, ValidExamples
from robustbench_lite.matrix.presets import headline_indices
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import AuditResult, CellResult, SanityCheck, ThreatSummary
from robustbench_lite.verdict import strongest_attack, verdict


@pytest.mark.parametrize(("family", "evaluated", "expected"), [
    ("digits", [("linf", 0.05), ("linf", 0.1), ("l2", 1.0), ("l2", 2.0)], [1, 2]),
    ("cifar10", [("linf", 4 / 255), ("linf", 8 / 255)], [1]),
    ("digits", [("linf", 0.05), ("linf", 0.2), ("l2", 0.5)], [1, 2]),  # none standard
    ("unknown-family", [("linf", 8 / 255)], [0]),  # generic: cifar10's budgets
    ("digits", [("linf", 0.1), ("linf", 0.1)], [0]),  # one index per threat model
    ("digits", [("linf", 0.1, True), ("linf", 0.1), ("linf", 0.2, True)], [1]),  # untargeted
    ("digits", [("linf", 0.05, True), ("linf", 0.1, True)], [1]),  # only targeted ones ran
    ("digits", [], []),
])
def test_headline_threats(family: str, evaluated: list[tuple[Any, ...]],
                          expected: list[int]) -> None:
    threats = [(*threat, False) if len(threat) == 2 else threat for threat in evaluated]
    assert headline_indices(family, threats) == expected


def two_threat_result(mode: str = "full") -> AuditResult:
    cells = [make_cell("fgsm", "linf", 0.05, 0.80), make_cell("pgd", "linf", 0.05, 0.70),
             make_cell("fgsm", "linf", 0.1, 0.60), make_cell("pgd", "linf", 0.1, 0.45),
             make_cell("square", "linf", 0.1, None)]
    rows = [ThreatSummary("linf", 0.05, 0.65, ["fgsm", "pgd"]),
            ThreatSummary("linf", 0.1, 0.41, ["fgsm", "pgd"])]
    return make_result(cells=cells, robust_accuracy=rows, mode=mode)


def test_verdict_at_the_standard_eps() -> None:
    result = two_threat_result()
    found = verdict(result)
    assert [(t.norm, t.eps, t.standard) for t in found.threats] == [("linf", 0.1, True)]
    headline = found.threats[0]
    assert headline.robust_accuracy == 0.41
    assert headline.strongest_attack == "pgd"
    assert headline.strongest_broke == pytest.approx(0.97 - 0.45)
    assert found.sanity == "not run" and found.gates == "not set"


def test_strongest_attack_in_cascade_mode_is_the_largest_drop() -> None:
    cells = [make_cell("fgsm", "linf", 0.1, 0.50), make_cell("pgd", "linf", 0.1, 0.45),
             make_cell("square", "linf", 0.1, 0.20)]
    result = make_result(cells=cells, mode="fast (cascade)")
    attack, broke = strongest_attack(result, "linf", 0.1)
    assert attack == "fgsm" and broke == pytest.approx(0.47)  # 0.97 -> 0.50
    cells[2].accuracy = 0.0  # square: 0.45 < 0.47
    assert strongest_attack(result, "linf", 0.1)[0] == "fgsm"
    result.mode = "full"  # each cell on its own: square broke the most
    assert strongest_attack(result, "linf", 0.1) == ("square", pytest.approx(0.97))


def test_ties_go_to_the_earlier_attack() -> None:
    cells = [make_cell("fgsm", "linf", 0.1, 0.5), make_cell("pgd", "linf", 0.1, 0.5)]
    assert strongest_attack(make_result(cells=cells), "linf", 0.1)[0] == "fgsm"


def test_no_finished_attack_has_no_strongest() -> None:
    result = make_result(cells=[make_cell("pgd", "linf", 0.1, None)])
    assert strongest_attack(result, "linf", 0.1) == (None, None)


def test_sanity_and_gates() -> None:
    result = two_threat_result()
    result.checks = [SanityCheck("a", "pass", "ok"), SanityCheck("b", "warn", "hm"),
                     SanityCheck("c", "pass", "ok")]
    result.gates = [{"threshold": 0.5, "norm": "linf", "eps": 0.1, "accuracy": 0.41,
                     "passed": False, "message": "below"}]
    found = verdict(result)
    assert found.sanity == "warn"
    assert found.sanity_counts == {"pass": 2, "warn": 1, "fail": 0}
    assert found.gates == "failed" and found.gate_messages == ["below"]
    result.checks.append(SanityCheck("d", "fail", "bad"))
    result.gates[0]["passed"] = True
    assert verdict(result).sanity == "fail" and verdict(result).gates == "passed"


def cell_checks(cells: list[CellResult]) -> list[SanityCheck]:
    context = CheckContext(model=None, data=None, attacks=[], threats=[],  # type: ignore[arg-type]
                           probe_x=torch.zeros(1), probe_y=torch.zeros(1), seed=0,
                           result=make_result(cells=cells))
    return [EveryCellRan().run(context), ValidExamples().run(context)]


def test_cell_checks_report_failures_and_invalid_examples() -> None:
    cells = [make_cell("pgd", "linf", 0.1, 0.5),
             make_cell("square", "linf", 0.1, None),
             make_cell("cheat", "linf", 0.1, 0.9, violations=7,
                       violation_details=["outside the eps-ball"])]
    ran, valid = cell_checks(cells)
    assert (ran.status, ran.details) == ("warn", {"cells": 3, "failed": 1})
    assert "square at Linf eps=0.1" in ran.message
    assert (valid.status, valid.details["invalid_examples"]) == ("fail", 7)
    assert "cheat at Linf eps=0.1" in valid.message
    assert [check.status for check in cell_checks(cells[:1])] == ["pass", "pass"]


def verdict_section(html: str) -> str:
    start = html.index('<section id="verdict"')
    return html[start:html.index("</section>", start)]


def test_report_verdict_shows_the_verdict_numbers() -> None:
    result = two_threat_result()
    result.checks = cell_checks(result.cells)
    result.gates = [{"threshold": 0.5, "norm": "linf", "eps": 0.1, "accuracy": 0.41,
                     "passed": False, "message": "worst-case robust accuracy 41.0% is below"}]
    section = verdict_section(render_html(result))
    text = re.sub(r"<[^>]+>", "", section)
    assert "41.0%" in text and "Linf eps=0.1" in text and "standard budget for digits" in text
    assert "97.0%" in text  # clean accuracy
    assert "pgd (broke 52.0% of the samples)" in text
    assert "FAILED" in text and "verdict-fail" in section
    assert "worst-case robust accuracy 41.0% is below" in text
    assert "1 passed, 1 warned, 0 failed" in text
    assert "65.0%" not in text  # only the standard eps is headlined


def test_targeted_threat_models_are_kept_apart() -> None:
    cells = [make_cell("pgd", "linf", 0.1, 0.45), make_cell("apgd-t", "linf", 0.1, 0.2,
                                                             targeted=True)]
    rows = [ThreatSummary("linf", 0.1, 0.45, ["pgd"]),
            ThreatSummary("linf", 0.1, 0.2, ["apgd-t"], targeted=True)]
    result = make_result(cells=cells, robust_accuracy=rows)
    headline = verdict(result).threats
    assert [(t.robust_accuracy, t.strongest_attack, t.targeted) for t in headline] == [
        (0.45, "pgd", False)]
    assert strongest_attack(result, "linf", 0.1, targeted=True)[0] == "apgd-t"
    html = render_html(result)
    table = result.accuracy_table()
    assert list(table.columns) == ["Linf 0.1", "targeted Linf 0.1"]
    assert table.loc["worst case"].tolist() == [0.45, 0.2]
    assert "<strong>targeted Linf 0.1</strong>: every pixel may change" in html
    assert "the audit chose the target, a wrong class drawn at random for each sample, and " \
        "the attack succeeds only if the model outputs it" in html


def test_report_verdict_says_when_the_standard_eps_was_not_run() -> None:
    result = make_result(cells=[make_cell("pgd", "linf", 0.2, 0.1)],
                         robust_accuracy=[ThreatSummary("linf", 0.2, 0.1, ["pgd"])])
    text = re.sub(r"<[^>]+>", "", verdict_section(render_html(result)))
    assert "Linf eps=0.2" in text and "the standard one was not run" in text
    assert "not set (--fail-under)" in text and "not run" in text
