"""Open an HTML report in the system's headless Chromium and record what the page did.

Playwright's sync API drives the Chromium the machine already has (Debian's ``chromium``
package, or ``$CHROMIUM``); it never downloads a browser. The page is opened from a
``file://`` URL and everything that could betray a broken or leaky report is collected: console
errors and warnings, uncaught exceptions, every request, dialogs, the ``section[id]`` elements,
and a print to PDF. Optionally a full-page screenshot is saved.

As a script it regenerates the screenshot kept in ``docs/``::

    python tests/browser.py robust-out/report.html docs/report-screenshot.png 2000

(the optional last argument keeps only the top 2000 pixels of the page)
and exits non-zero if the page logged an error, raised, opened a dialog or asked for anything
but its own file and ``data:`` URIs.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Dialog, ViewportSize

#: Where to look for a browser when ``$CHROMIUM`` is not set, in this order.
EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")

#: As root in CI (no sandbox) and without a GPU. Playwright already passes the
#: ``--disable-background-networking`` family; the browser process still probes Google
#: (accounts.google.com/ListAccounts, android.clients.google.com/checkin) despite them, so every
#: host name resolves to nothing: no DNS query or connection leaves the machine, for Chromium's
#: own traffic or for a report that reached for the network (that request is still recorded).
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-domain-reliability",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)

VIEWPORT: ViewportSize = {"width": 1200, "height": 900}


def find_chromium() -> str | None:
    """``$CHROMIUM`` if set, else the first of `EXECUTABLES` on ``PATH``; ``None`` if none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageReport:
    """What one visit of a report page produced."""

    url: str
    title: str
    section_ids: list[str]
    text: str
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text), errors/warnings
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    pdf_bytes: int = 0
    pdf_pages: int = 0
    screenshot: Path | None = None

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def unexpected_requests(self) -> list[str]:
        """Requests for anything but the report's own file and inline ``data:`` URIs."""
        return [url for url in self.requests if url != self.url and not url.startswith("data:")]

    def problems(self) -> list[str]:
        """One line per thing a clean, offline report must not do (empty when clean)."""
        return ([f"console error: {text}" for text in self.console_errors]
                + [f"page error: {text}" for text in self.page_errors]
                + [f"request: {url}" for url in self.unexpected_requests()]
                + [f"failed request: {text}" for text in self.failed_requests]
                + [f"dialog: {text}" for text in self.dialogs]
                + ([] if self.pdf_pages else ["printing produced no PDF pages"]))


def _count_pdf_pages(pdf: bytes) -> int:
    # Chromium (Skia) writes each page object's dictionary uncompressed: ``/Type /Page``,
    # which ``/Type /Pages`` (the page tree) must not be counted as.
    return pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")


def inspect_report(path: Path, screenshot: Path | None = None, *,
                   javascript: bool = True, executable: str | None = None,
                   screenshot_height: int | None = None) -> PageReport:
    """Open ``path`` from its ``file://`` URL in headless Chromium and record the visit.

    ``screenshot`` (if given) receives a full-page PNG at a 1200-pixel-wide viewport, or its
    top ``screenshot_height`` pixels; the page is also printed to PDF (print media) to check
    it prints. Raises `RuntimeError` when no Chromium is found.
    """
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found: install Debian's chromium or set $CHROMIUM")
    url = path.resolve().as_uri()
    console: list[tuple[str, str]] = []
    page_errors: list[str] = []
    requests: list[str] = []
    failed: list[str] = []
    dialogs: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=list(LAUNCH_ARGS))
        try:
            context = browser.new_context(viewport=VIEWPORT, java_script_enabled=javascript,
                                          device_scale_factor=1)
            # Context-level events see the page's requests and also those of service workers
            # and of any page the report opens; a page-level listener would only repeat them.
            context.on("request", lambda request: requests.append(request.url))
            context.on("requestfailed", lambda request: failed.append(
                f"{request.url} ({request.failure})"))
            page = context.new_page()

            def on_console(message: ConsoleMessage) -> None:
                if message.type in ("error", "warning"):
                    console.append((message.type, message.text))

            def dismiss(dialog: Dialog) -> None:
                dialogs.append(f"{dialog.type}: {dialog.message}")
                dialog.dismiss()

            page.on("console", on_console)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("dialog", dismiss)
            page.goto(url, wait_until="load")
            page.wait_for_load_state("networkidle")
            title = page.title()
            section_ids = [element.get_attribute("id") or ""
                           for element in page.locator("section[id]").all()]
            text = page.locator("body").inner_text()
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                if screenshot_height is None:
                    page.screenshot(path=str(screenshot), full_page=True)
                else:
                    page.screenshot(path=str(screenshot), full_page=True, clip={
                        "x": 0, "y": 0, "width": VIEWPORT["width"],
                        "height": screenshot_height})
            page.emulate_media(media="print")
            pdf = page.pdf(format="A4", print_background=True)
        finally:
            browser.close()

    return PageReport(url=url, title=title, section_ids=section_ids, text=text,
                      console=console, page_errors=page_errors, requests=requests,
                      failed_requests=failed, dialogs=dialogs, pdf_bytes=len(pdf),
                      pdf_pages=_count_pdf_pages(pdf), screenshot=screenshot)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python tests/browser.py REPORT_HTML PNG_OUT [HEIGHT]", file=sys.stderr)
        return 2
    height = int(argv[2]) if len(argv) == 3 else None
    report = inspect_report(Path(argv[0]), Path(argv[1]), screenshot_height=height)
    print(f"title:    {report.title}")
    print(f"sections: {', '.join(report.section_ids)}")
    print(f"pdf:      {report.pdf_pages} pages, {report.pdf_bytes} bytes")
    print(f"requests: {', '.join(report.requests)}")
    for kind, text in report.console:
        print(f"console {kind}: {text}")
    problems = report.problems()
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    print(f"screenshot: {report.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
