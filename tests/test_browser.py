"""The HTML report in a real browser: headless Chromium opens ``report.html`` from a
``file://`` URL, with and without JavaScript, and the page must log no error, ask the network
for nothing, show every section, print, and render a hostile model name as text.

Needs a system Chromium (Debian's ``chromium``). Without one the tests skip, unless
``ROBUSTBENCH_LITE_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail instead.
``ROBUSTBENCH_LITE_SCREENSHOT_DIR``, if set, receives a copy of the screenshot.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import PageReport, find_chromium, inspect_report
from click.testing import CliRunner

from robustbench_lite.cli import cli

#: Every section of the report, by its ``<section id>``.
SECTION_IDS = (
    "verdict",
    "threat-models",
    "adversarial-accuracy",
    "curves",
    "transferability",
    "examples",
    "per-class",
    "sanity-checks",
    "cost",
    "reproducibility",
)
HOSTILE_NAME = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = [
    pytest.mark.slow,
    # torch 2.x deprecates the TorchScript API; the audit of the bundled model is unaffected.
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def chromium() -> str:
    executable = find_chromium()
    if executable is None:
        message = "no Chromium: install Debian's chromium or set $CHROMIUM"
        if os.environ.get("ROBUSTBENCH_LITE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message} (ROBUSTBENCH_LITE_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    return executable


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One quick audit of the built-in default model, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("browser-audit")
    root = logging.getLogger()  # `robust` reconfigures the root logger: put it back after
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(
            cli, ["audit", "--matrix", "quick", "--n-samples", "100", "--no-transfer",
                  "--out", str(out), "-q"], catch_exceptions=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    yield out


def assert_clean(page: PageReport) -> None:
    assert page.console_errors == [], page.console
    assert page.page_errors == []
    assert page.unexpected_requests() == [], page.requests
    assert page.failed_requests == []
    assert page.dialogs == []
    missing = [section for section in SECTION_IDS if section not in page.section_ids]
    assert missing == [], f"sections missing: {missing}; present: {page.section_ids}"
    assert page.pdf_pages >= 1 and page.pdf_bytes > 10_000, "the page does not print"


def test_report_is_clean_and_offline_in_chromium(chromium: str, audit_dir: Path,
                                                 tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    page = inspect_report(audit_dir / "report.html", screenshot, executable=chromium)

    assert_clean(page)
    assert page.requests[0] == page.url
    assert page.title.strip()
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE
    assert screenshot.stat().st_size > 20_000
    keep = os.environ.get("ROBUSTBENCH_LITE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "report-screenshot.png")


def test_report_works_without_javascript(chromium: str, audit_dir: Path) -> None:
    page = inspect_report(audit_dir / "report.html", javascript=False, executable=chromium)

    assert_clean(page)


def test_hostile_model_name_is_shown_as_text(chromium: str, audit_dir: Path,
                                             tmp_path: Path) -> None:
    doc = json.loads((audit_dir / "results.json").read_text())
    doc["model"]["name"] = HOSTILE_NAME
    results = tmp_path / "results.json"
    results.write_text(json.dumps(doc))
    html = tmp_path / "hostile.html"
    result = CliRunner().invoke(cli, ["report", str(results), "-o", str(html)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert HOSTILE_NAME not in html.read_text()

    page = inspect_report(html, executable=chromium)

    assert HOSTILE_NAME in page.text
    assert page.dialogs == []
    assert page.console_errors == [], page.console
    assert page.page_errors == []
