"""Sanity checks read from an audit's cells: did every attack run, and did every attack stay
inside its threat model? Each returns a `SanityCheck` (pass / warn / fail, one line, the
numbers behind it)."""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lite.results import CellResult, SanityCheck
from robustbench_lite.threat import norm_label


def _where(cells: Sequence[CellResult]) -> str:
    shown = [f"{cell.attack} at {norm_label(cell.norm)} eps={cell.eps:g}" for cell in cells[:3]]
    more = f" and {len(cells) - 3} more" if len(cells) > 3 else ""
    return ", ".join(shown) + more


def valid_examples(cells: Sequence[CellResult]) -> SanityCheck:
    """Fails when an attack returned examples outside its eps-ball or the pixel box (the host
    counted those samples as not broken, so the attack's numbers are too optimistic)."""
    bad = [cell for cell in cells if cell.violations]
    total = sum(cell.violations for cell in bad)
    if not bad:
        return SanityCheck("valid adversarial examples", "pass",
                           "every attack returned examples inside its threat model",
                           {"invalid_examples": 0})
    return SanityCheck("valid adversarial examples", "fail",
                       f"{total} invalid example(s) from {_where(bad)}, counted as not broken: "
                       "those attacks are weaker here than they should be",
                       {"invalid_examples": total, "cells": len(bad)})


def every_cell_ran(cells: Sequence[CellResult]) -> SanityCheck:
    """Warns when a cell failed: the worst case leaves that attack out."""
    failed = [cell for cell in cells if cell.error]
    if not failed:
        return SanityCheck("every attack ran", "pass", f"all {len(cells)} cells finished",
                           {"cells": len(cells), "failed": 0})
    return SanityCheck("every attack ran", "warn",
                       f"{len(failed)} of {len(cells)} cells failed ({_where(failed)}); the "
                       "worst case leaves them out", {"cells": len(cells), "failed": len(failed)})


def cell_checks(cells: Sequence[CellResult]) -> list[SanityCheck]:
    """Every check that needs only the cells."""
    return [every_cell_ran(cells), valid_examples(cells)]
