"""The audit: an ordered list of stages the engine owns, from the clean pass to the checks
that read the finished result.

Stages, in order: ``clean`` (the task's judgement of every clean sample; a model that
returns NaN there stops the run before any attack; a randomised model is found here and from
then on judged in expectation over ``settings.draws`` forward draws:
`robustbench_lite.host.expectation`), ``probes`` (the before-stage checks,
which may add adaptive attacks), ``cells`` (the attack grid: `robustbench_lite.engine.grid`),
``examples``, ``certificate``, ``transfer`` and ``checks`` (the after-stage checks).

A `ModelGuard` snapshot of the model is taken first; after every unit of the grid and
after every stage, a model or torch setting that a plugin changed is restored, and the cell
fails (never stored) or the stage gets a note.

One failure policy: every stage after ``cells`` is guarded, and a cell, check, example set,
certificate or transfer threat model that cannot be served or raises is recorded as a
one-line `StageNote` (or, for a cell, its ``skipped``/``error``) while every other result
is kept. Only invalid input stops a run, and it does so before the attacks start.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial

import numpy as np
import torch

from robustbench_lite.attacks.base import Attack
from robustbench_lite.checks.base import PROBE_SAMPLES, Check, CheckContext, CheckStage
from robustbench_lite.checks.runner import adaptive_attacks, probe_context, run_checks
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.aggregate import fraction
from robustbench_lite.engine.certificate import certificate
from robustbench_lite.engine.examples import headline_examples
from robustbench_lite.engine.executor import Executor, InProcessExecutor
from robustbench_lite.engine.grid import GridResult, run_grid
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.engine.smoothing import smoothing_certificate
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.engine.transfer import TransferPlan, run_transfer
from robustbench_lite.errors import NonFiniteOutputError
from robustbench_lite.host.attack import CLASSIFICATION
from robustbench_lite.host.expectation import (
    automatic_draws,
    is_randomised,
    score_over_draws,
    standard_error,
)
from robustbench_lite.host.guard import ModelGuard
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import (
    AuditResult,
    DataInfo,
    Judgement,
    ModelInfo,
    RunInfo,
    SanityCheck,
    StageNote,
    TaskInfo,
)
from robustbench_lite.tasks.base import Task
from robustbench_lite.tasks.classification.task import ClassificationTask
from robustbench_lite.threat import Norm, ThreatModel

__all__ = ["AuditSettings", "run_audit"]

logger = logging.getLogger(__name__)


@dataclass
class AuditRun:
    """What the stages share: the inputs, then what each stage adds."""

    model: RobustModel
    data: EvalData
    task: Task
    attacks: list[Attack]
    threats: Sequence[ThreatModel]
    settings: AuditSettings
    plugins: list[dict[str, str | None]]
    store: ResultStore | None
    executor: Executor
    checks: Sequence[Check]
    transfer: TransferPlan | None
    certify: bool
    guard: ModelGuard
    started: float = field(default_factory=time.perf_counter)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="seconds"))
    clean_outputs: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    correct: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))
    clean_scores: np.ndarray | None = None  # randomised models: (2, n) selection, fresh
    checking: CheckContext | None = None
    findings: list[SanityCheck] = field(default_factory=list)
    grid: GridResult = field(default_factory=GridResult)
    notes: list[StageNote] = field(default_factory=list)
    result: AuditResult | None = None

    def note(self, stage: str, subject: str, status: str, reason: str) -> None:
        logger.info("%s%s %s: %s", stage, f" ({subject})" if subject else "", status,
                       reason)
        self.notes.append(StageNote(stage, subject, status, reason))

    def finished(self) -> AuditResult:
        if self.result is None:
            raise RuntimeError("the audit result is not assembled yet")
        return self.result


@torch.no_grad()
def clean_outputs(model: RobustModel, data: EvalData, batch_size: int) -> torch.Tensor:
    """The model's outputs on every clean sample (CPU); fails clearly on NaN or inf."""
    outputs = []
    for start in range(0, len(data.x), batch_size):
        batch = model(data.x[start:start + batch_size].to(model.device))
        if not torch.isfinite(batch).all():
            raise NonFiniteOutputError(f"the model returned NaN or infinite outputs on clean "
                                       f"samples {start}..{start + len(batch) - 1} of "
                                       f"{data.name!r}; its weights may be corrupt")
        outputs.append(batch.cpu())
    return torch.cat(outputs)


def _clean(run: AuditRun) -> None:
    run.clean_outputs = clean_outputs(run.model, run.data, run.settings.batch_size)
    run.correct = run.task.correct(run.clean_outputs, run.data.y).cpu()
    probe = run.data.x[:PROBE_SAMPLES].to(run.model.device)
    if not is_randomised(run.model, probe, run.clean_outputs[:PROBE_SAMPLES]):
        run.settings = replace(run.settings, draws=1)
        return
    draws = run.settings.draws or automatic_draws(len(run.data.x))
    if run.settings.fast:
        run.note("cells", "", "not applicable", "cascade (--fast) mode is not used for a "
                 "randomised model: every attack runs on every sample, so that each sample's "
                 "worst case is an expectation")
    run.settings = replace(run.settings, draws=draws, fast=False)
    scores = clean_scores(run.model, run.data, run.task, draws, run.settings.batch_size)
    run.clean_scores = scores
    run.correct = torch.from_numpy((scores > 0).any(axis=0))  # attack whatever it can get right
    logger.info("the model is randomised: every example is judged over %d forward draws "
                "(twice: to choose each sample's worst case, and to score it)", draws)


def clean_scores(model: RobustModel, data: EvalData, task: Task, draws: int,
                 batch_size: int) -> np.ndarray:
    """``(2, n)`` selection and fresh scores of the clean samples of a randomised model."""
    parts = []
    for start in range(0, len(data.x), batch_size):
        x = data.x[start:start + batch_size].to(model.device)
        y = data.y[start:start + batch_size].to(model.device)
        judged = score_over_draws(model, x, partial(task.correct, labels=y), None, draws)
        parts.append(judged.stacked()[:2].cpu().numpy())
    return np.concatenate(parts, axis=1)


def _probes(run: AuditRun) -> None:
    run.checking = probe_context(run.model, run.data, run.task, run.attacks, run.threats,
                                 run.correct, run.settings.seed, run.settings.draws or 1,
                                 run.clean_scores)
    run.findings = run_checks(run.checks, CheckStage.BEFORE, run.checking,
                              on_failure=lambda name, why: run.note("checks", name, "failed",
                                                                    why))
    run.attacks = [*run.attacks, *adaptive_attacks(run.attacks, run.checking)]


def _cells(run: AuditRun) -> None:
    run.grid = run_grid(run.model, run.data, run.task, run.attacks, run.threats,
                        run.clean_outputs, run.correct, run.settings, run.store, run.executor,
                        run.guard, run.clean_scores)
    model, data, settings = run.model, run.data, run.settings
    run.result = AuditResult(
        model=ModelInfo(model.name, model.sha256, model.load_info.format,
                        model.load_info.trusted, model.load_info.architecture,
                        model.num_classes, list(model.input_shape),
                        list(model.load_info.notes)),
        data=DataInfo(data.name, data.sha256, len(data.x), data.source, data.family,
                      list(data.class_names)),
        clean_accuracy=fraction(run.correct.numpy() if run.clean_scores is None
                                else run.clean_scores[1]),
        cells=run.grid.cells,
        robust_accuracy=run.grid.summaries,
        run=RunInfo(settings.seed, str(model.device), settings.batch_size, settings.command,
                    run.started_at, 0.0, environment_versions(), run.plugins),
        matrix=dict(settings.matrix),
        mode="fast (cascade)" if settings.fast else "full",
        per_class=run.grid.per_class,
        curves=run.grid.curves,
        task=TaskInfo(run.task.name, run.task.version, run.task.description,
                      {name: float(value) for name, value in run.task.metrics(
                          run.clean_outputs, run.data.y).items()}),
        judgement=Judgement(run.clean_scores is not None, settings.draws or 1,
                            None if run.clean_scores is None else standard_error(
                                run.clean_scores[1], settings.draws or 1)),
    )


def _examples(run: AuditRun) -> None:
    run.finished().examples = headline_examples(run.model, run.data, run.task, run.threats,
                                                run.grid, run.settings)


def _certificate(run: AuditRun) -> None:
    if not run.certify:
        return
    if not isinstance(run.task, ClassificationTask):
        run.note("certificate", "", "not applicable", f"the Lipschitz certificate bounds "
                 f"class-logit margins; task {run.task.name!r} is not classification")
        return
    l2_eps = [threat.eps for threat in run.threats if threat.norm is Norm.L2]
    run.finished().certificate = certificate(run.model, run.data, l2_eps)
    if run.settings.smoothing_sigma is not None:
        run.finished().certificate["smoothing"] = smoothing_certificate(
            run.model, run.data, l2_eps, run.settings.smoothing_sigma, run.settings)


def _transfer(run: AuditRun) -> None:
    if run.transfer is None:
        return
    run.finished().transfer = run_transfer(run.transfer, run.model, run.data, run.task,
                                           run.threats, run.settings, run.note)


def _after_checks(run: AuditRun) -> None:
    if run.checking is None:
        return
    run.checking.result = run.finished()
    run.checking.outcomes = [o for o in run.grid.outcomes  # checks reason in Lp
                             if o.threat.norm.is_lp]
    run.findings += run_checks(run.checks, CheckStage.AFTER, run.checking,
                               on_failure=lambda name, why: run.note("checks", name, "failed",
                                                                     why))


@dataclass(frozen=True)
class Stage:
    """One step of the audit. A ``guarded`` stage that raises becomes a `StageNote`."""

    name: str
    run: Callable[[AuditRun], None]
    guarded: bool


STAGES = (
    Stage("clean", _clean, guarded=False),
    Stage("probes", _probes, guarded=True),
    Stage("cells", _cells, guarded=False),
    Stage("examples", _examples, guarded=True),
    Stage("certificate", _certificate, guarded=True),
    Stage("transfer", _transfer, guarded=True),
    Stage("checks", _after_checks, guarded=True),
)


def run_audit(model: RobustModel, data: EvalData, attacks: Sequence[Attack],
              threats: Sequence[ThreatModel], settings: AuditSettings,
              plugins: list[dict[str, str | None]], *, task: Task = CLASSIFICATION,
              store: ResultStore | None = None, executor: Executor | None = None,
              checks: Sequence[Check] = (), transfer: TransferPlan | None = None,
              certify: bool = False) -> AuditResult:
    """Evaluate ``model`` on ``data`` under every attack x threat model, judged by ``task``,
    through `STAGES`. ``transfer`` adds the transferability table, ``certify`` the Lipschitz
    certificate; ``checks`` run before (probes) and after (on the finished result).
    ``settings.draws`` must be None or at least 2 (`ValueError`): one draw would judge a
    randomised model by a single noisy pass."""
    if settings.draws is not None and (isinstance(settings.draws, bool) or settings.draws < 2):
        raise ValueError(f"draws must be at least 2 (judging a randomised model in "
                         f"expectation) or None (chosen automatically), got {settings.draws}")
    torch.manual_seed(settings.seed)
    run = AuditRun(model, data, task, list(attacks), threats, settings, plugins, store,
                   executor or InProcessExecutor(), checks, transfer, certify,
                   ModelGuard(model.module))
    for stage in STAGES:
        if not stage.guarded:
            stage.run(run)
        else:
            try:
                stage.run(run)
            except Exception as exc:
                run.note(stage.name, "", "failed", f"{type(exc).__name__}: {exc}")
        changes = run.guard.changes()
        if changes:  # a plugin (check, section, transfer attack) changed the model
            run.guard.restore()
            run.note(stage.name, "", "failed", "a plugin changed the model or torch's "
                     f"settings: {'; '.join(changes)}; restored, but this stage's results "
                     "may be affected")
    result = run.finished()
    result.checks = run.findings
    result.notes = run.notes
    result.run.seconds = time.perf_counter() - run.started
    return result


def environment_versions() -> dict[str, str]:
    from robustbench_lite import __version__

    return {"robustbench_lite": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform()}
