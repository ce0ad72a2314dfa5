"""Extra report sections from plugins (hook ``register_report_sections``).

The built-in sections are blocks of ``report.html`` (ids in `BUILTIN_SECTIONS`, in page
order). A `ReportSection` is rendered after the built-in section named by its ``after``, as
``<section id=NAME><h2>TITLE</h2>...</section>`` around its own template.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustbench_lite.errors import ReportTemplateError
from robustbench_lite.results import AuditResult

#: Ids of the built-in sections of ``report.html``, in page order.
BUILTIN_SECTIONS = (
    "verdict", "threat-models", "adversarial-accuracy", "curves", "certified", "cells",
    "transferability",
    "examples", "per-class", "sanity-checks", "cost", "reproducibility",
)

_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


def _no_data(result: AuditResult) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class ReportSection:
    """An extra section of the audit report.

    ``name`` is its HTML id (lowercase letters, digits and ``-``; unique among sections);
    ``title`` its heading; ``template`` a jinja2 template file in ``template_dir`` (name it
    after your plugin: template names share one namespace with the built-in ones, and a
    ``--template-dir`` file of the same name overrides it). The template sees ``result``
    (the `AuditResult`), ``section`` (this object) and ``data``: what ``data(result)``
    returns. ``after`` is the id of the built-in section it follows.
    """

    name: str
    title: str
    template: str
    template_dir: Path
    after: str = "sanity-checks"
    data: Callable[[AuditResult], Mapping[str, Any]] = field(default=_no_data, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in BUILTIN_SECTIONS:
            raise ValueError(f"report section name {self.name!r} must be lowercase letters, "
                             f"digits and '-', and not a built-in section "
                             f"({', '.join(BUILTIN_SECTIONS)})")
        if self.after not in BUILTIN_SECTIONS:
            raise ValueError(f"report section {self.name!r}: after={self.after!r} is not a "
                             f"built-in section; use one of {', '.join(BUILTIN_SECTIONS)}")


def section_template_dirs(sections: Sequence[ReportSection]) -> list[Path]:
    """The template folders of ``sections``, for the loader chain; two sections whose
    templates share a name but live in different folders are an error."""
    where: dict[str, ReportSection] = {}
    for section in sections:
        other = where.setdefault(section.template, section)
        if other.template_dir != section.template_dir:
            raise ReportTemplateError(
                f"report sections {other.name!r} and {section.name!r} both use a template "
                f"named {section.template!r} from different folders; rename one")
    return list(dict.fromkeys(section.template_dir for section in sections))


def section_data(sections: Sequence[ReportSection],
                 result: AuditResult) -> dict[str, Mapping[str, Any]]:
    """``data(result)`` of every section, by name; a failing ``data`` is a
    `ReportTemplateError` naming the section."""
    values = {}
    for section in sections:
        try:
            values[section.name] = section.data(result)
        except Exception as exc:
            raise ReportTemplateError(f"report section {section.name!r} failed to compute its "
                                      f"data: {type(exc).__name__}: {exc}") from exc
    return values
