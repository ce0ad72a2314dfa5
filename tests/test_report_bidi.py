"""Bidirectional control characters in names never reach the report raw: a reviewer reads
the name that was audited ("Trojan Source", CVE-2021-42574)."""

from __future__ import annotations

import dataclasses

from markupsafe import Markup
from result_factory import make_cell, make_result

from robustbench_lite.reports.bidi import neutralise_bidi
from robustbench_lite.reports.render import render_html
from robustbench_lite.results import ThreatSummary

HIDDEN = "\u202e\u2066\u200f\u061c"


def test_bidi_controls_become_visible_code_points() -> None:
    assert neutralise_bidi("model\u202egpj.exe") == "model[U+202E]gpj.exe"
    assert isinstance(neutralise_bidi(Markup("<b>a\u2067</b>")), Markup)
    assert neutralise_bidi("plain") == "plain" and neutralise_bidi(3) == 3


def test_no_bidi_control_reaches_the_page() -> None:
    result = make_result(cells=[make_cell(f"pgd{HIDDEN}", "linf", 0.1, 0.5)],
                         robust_accuracy=[ThreatSummary("linf", 0.1, 0.5, [f"pgd{HIDDEN}"])])
    result.model = dataclasses.replace(result.model, name="safe\u202etxt.exe")
    result.data = dataclasses.replace(result.data, class_names=[
        f"class{HIDDEN}{i}" for i in range(10)])
    html = render_html(result)
    assert not any(character in html for character in HIDDEN)
    assert "safe[U+202E]txt.exe" in html and "pgd[U+202E][U+2066]" in html
