"""Checks read from an audit's cells: did every attack run, and did every attack stay inside
its threat model?"""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lite.checks.base import Check, CheckContext, CheckStage
from robustbench_lite.results import CellResult, SanityCheck
from robustbench_lite.threat import norm_label


def _where(cells: Sequence[CellResult]) -> str:
    shown = [f"{cell.attack} at {norm_label(cell.norm)} eps={cell.eps:g}" for cell in cells[:3]]
    more = f" and {len(cells) - 3} more" if len(cells) > 3 else ""
    return ", ".join(shown) + more


class EveryCellRan(Check):
    """Warns when a cell failed: the worst case leaves that attack out."""

    name = "every attack ran"
    stage = CheckStage.AFTER
    description = "A failed attack is missing from the worst case."

    def run(self, context: CheckContext) -> SanityCheck:
        cells = context.finished().cells
        failed = [cell for cell in cells if cell.error]
        if not failed:
            return SanityCheck(self.name, "pass", f"all {len(cells)} cells finished",
                               {"cells": len(cells), "failed": 0})
        return SanityCheck(self.name, "warn",
                           f"{len(failed)} of {len(cells)} cells failed ({_where(failed)}); "
                           "the worst case leaves them out",
                           {"cells": len(cells), "failed": len(failed)})


class ValidExamples(Check):
    """Fails when an attack returned examples outside its eps-ball or the pixel box (the host
    counted those samples as not broken, so the attack's numbers are too optimistic)."""

    name = "valid adversarial examples"
    stage = CheckStage.AFTER
    description = "Invalid adversarial examples are counted as failures of the attack."

    def run(self, context: CheckContext) -> SanityCheck:
        bad = [cell for cell in context.finished().cells if cell.violations]
        total = sum(cell.violations for cell in bad)
        if not bad:
            return SanityCheck(self.name, "pass",
                               "every attack returned examples inside its threat model",
                               {"invalid_examples": 0})
        return SanityCheck(self.name, "fail",
                           f"{total} invalid example(s) from {_where(bad)}, counted as not "
                           "broken: those attacks are weaker here than they should be",
                           {"invalid_examples": total, "cells": len(bad)})
