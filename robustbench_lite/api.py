"""The Python API, mirroring ``robust audit``.

>>> import robustbench_lite
>>> result = robustbench_lite.audit()                      # the default model on digits
>>> result = robustbench_lite.audit("model.pt", "test.npz", matrix="quick",
...                                 options=ModelOptions(arch="preact-resnet18"))
>>> result.robust_accuracy[0].accuracy
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.checks.base import Check
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import DEFAULT_DATASET, load_dataset
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.engine.transfer import TransferPlan
from robustbench_lite.errors import DeviceError, ModelLoadError
from robustbench_lite.matrix.core import ThreatMatrix
from robustbench_lite.matrix.resolve import resolve_matrix
from robustbench_lite.models.architecture import Architecture
from robustbench_lite.models.loading import check_model_on_data, load_model
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.plugin_host import PluginManager, default_plugin_manager
from robustbench_lite.results import AuditResult
from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel, parse_threat_spec

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "digits-cnn"
DEFAULT_MATRIX = "standard"
DEFAULT_TRANSFER_ATTACK = "pgd:steps=20"
DEFAULT_TASK = "classification"


@dataclass(frozen=True)
class ModelOptions:
    """How to load a model file (the CLI's --arch, --arch-kwargs, --trust-model, ...)."""

    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    trust_model: bool = False
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    format_name: str | None = None
    name: str | None = None


def bundled_architecture(model: str | Path | None, catalogue: Catalogue) -> Architecture | None:
    """The architecture with bundled weights that ``model`` names (None: the default), or
    None when ``model`` is a file."""
    if model is not None and Path(model).exists():
        return None
    name = str(model) if model is not None else DEFAULT_MODEL
    if name not in catalogue.architectures.names():
        return None
    arch = catalogue.architectures.get(name)
    if arch.weights is None:
        return None
    if not arch.weights.is_file():
        raise ModelLoadError(f"the bundled weights of {name!r} are missing ({arch.weights}); "
                             "reinstall the package")
    return arch


def data_spec_for(spec: str | None, model: str | Path | None, catalogue: Catalogue) -> str:
    """``spec``, else the bundled model's dataset, else ``digits``."""
    if spec:
        return spec
    bundled = bundled_architecture(model, catalogue)
    return bundled.dataset if bundled is not None and bundled.dataset else DEFAULT_DATASET


def open_model(model: str | Path | None, data: EvalData, catalogue: Catalogue,
               options: ModelOptions = ModelOptions(),
               device: torch.device | str = "cpu", task: Task | None = None) -> RobustModel:
    """Load a model file or a bundled model name (None: the default model), check it
    against ``data`` and ``task`` (default: classification) and move it to ``device``."""
    bundled = bundled_architecture(model, catalogue)
    arch: str | None
    name: str | None
    if bundled is not None and bundled.weights is not None:
        path, arch, name = bundled.weights, bundled.name, options.name or bundled.name
    else:
        path, arch, name = Path(str(model)), options.arch, options.name
    loaded = load_model(path, catalogue=catalogue, input_shape=data.input_shape, arch=arch,
                        arch_kwargs=options.arch_kwargs, trust_model=options.trust_model,
                        mean=options.mean, std=options.std, name=name,
                        num_classes=data.num_classes, format_name=options.format_name)
    loaded.to(device)
    check_model_on_data(loaded, data, task)
    if task is not None:
        loaded.task = task.name
    return loaded


@dataclass
class AuditJob:
    """Everything an audit needs, loaded and checked; `run_job` runs it."""

    model: RobustModel
    data: EvalData
    data_spec: str | None
    split: str
    matrix: ThreatMatrix
    attacks: list[Attack]
    task: Task
    transfer: TransferPlan | None
    settings: AuditSettings
    plugins: list[dict[str, str | None]]
    store: Path | None
    catalogue: Catalogue
    bundled: Architecture | None
    checks: list[Check]


def usable_device(device: torch.device | str | None) -> torch.device:
    """``device`` (None: CUDA when present, else the CPU) after checking that a tensor can
    live there; `DeviceError` otherwise (``meta`` holds no values, a missing GPU)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
        if target.type == "meta":
            raise DeviceError("device 'meta' holds no values, so nothing can be evaluated "
                              "there; use cpu or cuda")
        torch.zeros(1, device=target)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise DeviceError(f"device {str(device)!r} cannot be used here "
                          f"({' '.join(str(exc).split())[:120]}); use cpu or an existing "
                          "cuda:N") from None
    return target


def prepare(model: RobustModel | str | Path | None = None,
            data: EvalData | str | None = None, *, matrix: str | ThreatMatrix = DEFAULT_MATRIX,
            attacks: Sequence[str] = (), threats: Sequence[str | ThreatModel] = (),
            options: ModelOptions = ModelOptions(),
            compare: Sequence[RobustModel | str | Path] = (), transfer: bool = True,
            transfer_attack: str = DEFAULT_TRANSFER_ATTACK, seed: int = 0,
            batch_size: int = 128, device: torch.device | str | None = None,
            fast: bool = False, shard_size: int | None = None, store: Path | None = None,
            split: str = "test", n_samples: int | None = None, examples: int = 6,
            checks: bool = True, task: str = DEFAULT_TASK,
            cell_time_limit: float | None = None, draws: int | None = None,
            show_progress: bool = False, command: str = "",
            manager: PluginManager | None = None,
            smoothing_sigma: float | None = None,
            smoothing_n0: int = AuditSettings.smoothing_n0,
            smoothing_n: int = AuditSettings.smoothing_n,
            smoothing_alpha: float = AuditSettings.smoothing_alpha) -> AuditJob:
    """Load and check the model, data, matrix and attacks (cheap checks first, so a typo
    fails before any data is read); see `audit` for the arguments."""
    manager = manager or default_plugin_manager()
    catalogue = catalogue_for(manager)
    judge = catalogue.tasks.get(task)()
    for spec in (*attacks, transfer_attack):
        build_attack(spec, catalogue)
    parsed_threats = [t for item in threats
                      for t in ([item] if isinstance(item, ThreatModel)
                                else parse_threat_spec(item))]
    target = usable_device(device)
    model_spec = None if isinstance(model, RobustModel) else model
    data_spec = None if isinstance(data, EvalData) else data_spec_for(data, model_spec,
                                                                      catalogue)
    eval_data = data if isinstance(data, EvalData) else load_dataset(
        str(data_spec), catalogue, split).subset(n_samples)
    base = matrix if isinstance(matrix, ThreatMatrix) else resolve_matrix(
        matrix, catalogue, eval_data.family)
    plan = base.with_overrides(attacks=attacks, threats=parsed_threats)
    robust_model = model if isinstance(model, RobustModel) else open_model(
        model, eval_data, catalogue, options, target, judge)
    others = [other if isinstance(other, RobustModel)
              else open_model(other, eval_data, catalogue, options, target, judge)
              for other in compare]
    seen = {robust_model.name}
    for index, other in enumerate(others, start=2):
        if other.name in seen:  # transfer rows are keyed by display name
            other.name = f"{other.name} #{index}"
        seen.add(other.name)
    settings = AuditSettings(seed=seed, batch_size=batch_size, show_progress=show_progress,
                             command=command, fast=fast, shard_size=shard_size,
                             examples=examples, cell_time_limit=cell_time_limit, draws=draws,
                             smoothing_sigma=smoothing_sigma, smoothing_n0=smoothing_n0,
                             smoothing_n=smoothing_n, smoothing_alpha=smoothing_alpha,
                             matrix={"name": plan.name, "version": plan.version})
    held_out = None
    if data_spec is not None:
        held_out_split = "train" if split == "test" else "test"
        held_out = _loader(str(data_spec), catalogue, held_out_split)
    plan_transfer = TransferPlan(build_attack(transfer_attack, catalogue), others,
                                 held_out) if transfer else None
    return AuditJob(
        model=robust_model, data=eval_data, data_spec=data_spec, split=split, matrix=plan,
        attacks=[build_attack(spec, catalogue) for spec in plan.attacks], task=judge,
        transfer=plan_transfer, settings=settings,
        plugins=[{"name": info.name, "version": info.version}
                 for info in manager.plugin_infos()],
        store=store, catalogue=catalogue,
        checks=[cls() for cls in catalogue.checks.values()] if checks else [],
        bundled=None if isinstance(model, RobustModel) else bundled_architecture(model,
                                                                                catalogue))


def run_job(job: AuditJob) -> AuditResult:
    """Run the audit's stages (`robustbench_lite.engine.audit`), through the result store if
    the job has one."""
    result_store = ResultStore(job.store) if job.store is not None else None
    try:
        return run_audit(job.model, job.data, job.attacks, job.matrix.threats, job.settings,
                         job.plugins, task=job.task, store=result_store, checks=job.checks,
                         transfer=job.transfer, certify=True)
    finally:
        if result_store is not None:
            result_store.close()


def audit(model: RobustModel | str | Path | None = None, data: EvalData | str | None = None,
          **kwargs: Any) -> AuditResult:
    """Audit ``model`` (a `RobustModel`, a file, a bundled model name, or None for the
    default model) on ``data`` (`EvalData`, a ``--data`` spec, or None for the model's
    dataset) and return the `AuditResult`.

    Keyword arguments mirror ``robust audit``: ``matrix`` (preset name, .toml path or
    `ThreatMatrix`), ``attacks`` and ``threats`` (override the matrix's), ``options``
    (`ModelOptions`: arch, normalisation, trust), ``compare`` (more models for the
    transferability table; with none and ``transfer`` on, a surrogate distilled from the
    model's predictions on the held-out split gives the black-box row), ``transfer_attack``,
    ``seed``, ``batch_size``, ``device``, ``fast`` (cascade mode), ``shard_size``,
    ``store`` (SQLite result store path; None: none), ``split``, ``n_samples``,
    ``examples`` (example images to capture), ``checks`` (run the registered sanity checks;
    their adaptive fallbacks add ``NAME+TAG`` attacks), ``task`` (the registered task that
    judges the model: ``classification`` by default), ``cell_time_limit`` (seconds one
    unit may run before it fails with a time-limit error; None: no limit), ``draws``
    (forward draws per judged example of a randomised model; None: enough for a standard
    error under one point),
    ``show_progress``, ``smoothing_sigma`` (add the randomized-smoothing certificate at this
    noise level; None: not computed) with ``smoothing_n0``, ``smoothing_n`` and
    ``smoothing_alpha`` (its selection draws, estimation draws and failure probability).
    """
    return run_job(prepare(model, data, **kwargs))


def _loader(spec: str, catalogue: Catalogue, split: str) -> Callable[[], EvalData]:
    """Load ``split`` of the dataset ``spec`` when called (the surrogate's held-out data)."""
    return lambda: load_dataset(spec, catalogue, split)
