"""An example robustbench_lite plugin: the ``random-sign`` baseline attack and a report
section showing its results.

Installed (``pip install ./plugins/example-attack``), it is found through its entry point
``example_attack`` in the group ``robustbench_lite`` (see ``pyproject.toml``); then
``robust plugins`` lists it, ``robust audit --attack random-sign`` runs it and every report
gets a "Random-sign baseline" section.

A plugin is just a module with ``@robustbench_lite.hookimpl`` functions named after the hooks
in ``robustbench_lite.hookspecs``. This one implements ``register_attacks`` and
``register_report_sections``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

import robustbench_lite
from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.reports.sections import ReportSection
from robustbench_lite.results import AuditResult
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

__all__ = ["RandomSign", "random_sign_cells", "register_attacks", "register_report_sections"]


class RandomSign(Attack):
    """Random corners of the Linf ball: a gradient-free baseline.

    Norm: Linf only. Objectives: any (it needs nothing beyond `Objective.success`, so
    ``requires`` stays empty): untargeted and targeted classification, and other tasks'
    objectives alike. It never looks at labels or targets, only at whether the objective
    it is handed is reached.

    Parameters:
        samples: how many random corners ``x + eps * sign(noise)`` to try per image
            (keyword-only, default 8, at least 1).

    Per image, the first corner that reaches the objective is kept (else the last one
    tried), projected onto the threat model (the eps-ball and the pixel box). Images whose
    objective is reached are not queried again; ``objective.select`` gives the objective of
    the images still being attacked.

    Cost: at most ``samples`` model queries per image; no gradients.

    A model that a few random corners fool is not robust at that eps; surviving them proves
    little, so run it next to a gradient attack such as ``pgd``.
    """

    name = "random-sign"
    norms = frozenset({Norm.LINF})
    kind = AttackKind.BASELINE

    def __init__(self, *, samples: int = 8) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        self.samples = samples
        self._set_params(samples=samples)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        x_adv = x.detach().clone()
        remaining = torch.arange(len(x), device=x.device)  # indices not broken yet
        with torch.no_grad():
            for _ in range(self.samples):
                if len(remaining) == 0:
                    break
                x_rest = x[remaining]
                noise = torch.randn(x_rest.shape, generator=generator, device=x.device,
                                    dtype=x.dtype)
                candidate = threat.project(x_rest + threat.eps * noise.sign(), x_rest)
                x_adv[remaining] = candidate
                reached = objective.select(remaining).success(model(candidate))
                remaining = remaining[~reached]
        return x_adv


@robustbench_lite.hookimpl
def register_attacks(register: Callable[[Any], None]) -> None:
    """Add `RandomSign` to the catalogue; users select it with ``--attack random-sign``."""
    register(RandomSign)


def random_sign_cells(result: AuditResult) -> Mapping[str, Any]:
    """What the report section shows: the finished random-sign cells and, by (norm, eps),
    the worst-case accuracy of the audit."""
    return {
        "cells": [cell for cell in result.cells
                  if cell.attack == RandomSign.name and cell.accuracy is not None],
        "worst": {(row.norm, row.eps): row.accuracy for row in result.robust_accuracy},
    }


@robustbench_lite.hookimpl
def register_report_sections(register: Callable[[Any], None]) -> None:
    """Add the "Random-sign baseline" section after the adversarial-accuracy table."""
    register(ReportSection(
        name="random-sign-baseline", title="Random-sign baseline",
        template="example_attack_random_sign.html",
        template_dir=Path(__file__).parent / "templates",
        after="adversarial-accuracy", data=random_sign_cells))
