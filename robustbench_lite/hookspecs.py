"""Every hook of robustbench_lite, with its contract.

Plugins implement these with ``@robustbench_lite.hookimpl`` and are found through the
entry-point group ``robustbench_lite``. The built-in architectures, adapters, datasets and
attacks are registered through these same hooks (see ``robustbench_lite.builtin``).

Catalogue hooks receive a ``register`` callback. Call it once per object; the host checks the
type and that the name is not taken, and names the offending plugin in its error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

PROJECT_NAME = "robustbench_lite"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------- catalogue hooks


@hookspec
def register_architectures(register: Callable[[Any], None]) -> None:
    """Register model architectures.

    Call ``register(arch)`` with a `robustbench_lite.models.architecture.Architecture`
    instance for each one. Its ``name`` is what users pass to ``--arch``.
    """


@hookspec
def register_model_adapters(register: Callable[[Any], None]) -> None:
    """Register model-file adapters.

    Call ``register(AdapterClass)`` with a subclass of
    `robustbench_lite.models.adapter.ModelAdapter`. When loading a file, adapters from
    third-party plugins are asked first (``detect``), the built-ins last.
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register dataset sources.

    Call ``register(SourceClass)`` with a subclass of
    `robustbench_lite.data.source.DatasetSource`. Its ``name`` is what users pass to
    ``--data`` (or ``--data NAME:PATH``).
    """


@hookspec
def register_attacks(register: Callable[[Any], None]) -> None:
    """Register attacks.

    Call ``register(AttackClass)`` with a subclass of `robustbench_lite.attacks.base.Attack`.
    Its ``name`` is what users pass to ``--attack``; it must be constructible with no
    arguments (hyperparameters are keyword-only with defaults).
    """


@hookspec
def register_threat_matrices(register: Callable[[Any], None]) -> None:
    """Register threat-matrix presets.

    Call ``register(preset)`` with a `robustbench_lite.matrix.core.MatrixPreset`; its
    ``name`` is what users pass to ``--matrix``. ``preset.build(family)`` returns the
    `ThreatMatrix` for a data family, so eps values can follow the dataset.
    """


@hookspec
def register_defenses(register: Callable[[Any], None]) -> None:
    """Register defenses for ``robust harden``.

    Call ``register(DefenseClass)`` with a subclass of
    `robustbench_lite.defenses.base.Defense`. Its ``name`` is what users pass to
    ``--defense``; it must be constructible with no arguments (parameters are keyword-only
    with defaults, set as ``--defense NAME:key=value``).
    """


@hookspec
def register_checks(register: Callable[[Any], None]) -> None:
    """Register sanity checks of the evaluation.

    Call ``register(CheckClass)`` with a subclass of `robustbench_lite.checks.base.Check`:
    its ``name`` is shown in the report, its ``stage`` says whether it probes the model
    before the attacks (and may ask for an `Adaptation` of the gradient attacks) or reads
    the finished audit. It must be constructible with no arguments. Every registered check
    runs in every audit (``robust audit --no-checks`` skips them all).
    """


@hookspec
def register_report_sections(register: Callable[[Any], None]) -> None:
    """Register extra sections of the audit report.

    Call ``register(section)`` with a `robustbench_lite.reports.sections.ReportSection`: its
    ``name`` (the section's HTML id), ``title``, ``template`` (a jinja2 file in
    ``template_dir``, autoescaped, seeing ``result``, ``section`` and ``data``), ``after``
    (the built-in section it follows) and ``data`` (a function of the `AuditResult` whose
    return value the template sees as ``data``). Sections appear in every report,
    including ``robust report`` re-renders.
    """


@hookspec
def register_generators(register: Callable[[Any], None]) -> None:
    """Register style-based generators for semantic attacks and defenses.

    Call ``register(GeneratorClass)`` with a subclass of
    `robustbench_lite.semantic.generator.StyleGenerator`. Its ``name`` is what users pass as
    a generator spec (`robustbench_lite.semantic.load_generator`) and the ``generator``
    metadata of its files; its classmethod ``load(path)`` opens a file of that kind, or its
    bundled default when ``path`` is None, and raises `GeneratorError` with one line naming
    the fix.
    """


@hookspec
def register_tasks(register: Callable[[Any], None]) -> None:
    """Register tasks: kinds of model and how the host judges them.

    Call ``register(TaskClass)`` with a subclass of `robustbench_lite.tasks.base.Task`
    (constructible with no arguments). Its ``name`` is what users pass as ``--task``; it
    says what the model's output means (``description``), when a sample is correct
    (``correct``), which `robustbench_lite.tasks.objective.Objective` attacks pursue at a
    threat model (``objective_type`` and ``objective``), how targets are chosen for targeted
    threat models (``choose_targets``), how an output reads in the report (``explain``),
    its ``metrics`` and ``report_sections``. Raise its ``version`` whenever a judgement or
    objective changes, so stored cells are recomputed.
    """


# ---------------------------------------------------------------- command-line hooks


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``robust`` command group, e.g. with ``@cli.command()``."""
