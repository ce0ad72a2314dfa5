"""``robust harden`` as a function: audit the model, harden it through a defense recipe,
save it, audit it again with the same matrix, and compare.

Output folder: ``model.safetensors`` (when the architecture is known: the bundled model,
``--arch`` or ``--from-scratch``; reload with ``--arch``), ``model.pt`` (TorchScript, loads
with no flags), ``training_log.csv``/``.json``, ``checkpoint.pt`` (resume with
``resume=True``), ``before/`` and ``after/`` (each a full audit output) and
``comparison.html``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize

from robustbench_lite.api import ModelOptions, open_model, prepare, run_job
from robustbench_lite.atomic import atomic_path, atomic_write_text
from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.defenses.base import DefenseContext
from robustbench_lite.defenses.spec import build_recipe
from robustbench_lite.errors import DefenseError
from robustbench_lite.matrix.core import ThreatMatrix
from robustbench_lite.models.normalize import Normalized
from robustbench_lite.models.robust_model import LoadInfo, RobustModel, file_sha256
from robustbench_lite.plugin_host import PluginManager, default_plugin_manager
from robustbench_lite.reports.diff import render_diff_html
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.results import AuditResult
from robustbench_lite.results_schema import encode_non_finite
from robustbench_lite.training.harden import EpochLog, Hardener, HardenSettings

logger = logging.getLogger(__name__)


@dataclass
class HardenOutcome:
    before: AuditResult
    after: AuditResult
    log: list[EpochLog]
    paths: dict[str, Path]


def bake(module: nn.Module) -> nn.Module:
    """``module`` with every parametrization (spectral norm) replaced by its current value,
    so its state_dict loads into the plain architecture."""
    for submodule in module.modules():
        if parametrize.is_parametrized(submodule):
            for name in list(submodule.parametrizations):  # type: ignore[arg-type]
                parametrize.remove_parametrizations(submodule, name, leave_parametrized=True)
    return module


def save_model(module: nn.Module, architecture: str | None, example: torch.Tensor,
               out_dir: Path, arch_kwargs: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write the hardened network as TorchScript (``model.pt``) and, with a known
    architecture, as safetensors of the bare network (``model.safetensors``, whose metadata
    names the architecture and its keyword arguments, so it loads without ``--arch``)."""
    paths: dict[str, Path] = {}
    inner = module.model if isinstance(module, Normalized) else module
    if architecture is not None:
        paths["safetensors"] = out_dir / "model.safetensors"
        metadata = {"architecture": architecture, "arch_kwargs": json.dumps(dict(arch_kwargs
                                                                                 or {}))}
        with atomic_path(paths["safetensors"]) as temporary:
            save_file({k: v.detach().contiguous() for k, v in inner.state_dict().items()},
                      str(temporary), metadata=metadata)
    paths["torchscript"] = out_dir / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.x deprecates TorchScript
        traced = torch.jit.trace(module.eval(), example)  # type: ignore[no-untyped-call]
        with atomic_path(paths["torchscript"]) as temporary:
            torch.jit.save(traced, str(temporary))
    return paths


def _starting_module(model: RobustModel, from_scratch: bool, architecture: str | None,
                     options: ModelOptions, manager: PluginManager) -> nn.Module:
    if not from_scratch:
        return copy.deepcopy(model.module)
    if architecture is None:
        raise DefenseError("--from-scratch needs the architecture: give --arch (or harden a "
                           "built-in model)")
    catalogue = catalogue_for(manager)
    module = catalogue.architectures.get(architecture).create(
        num_classes=model.num_classes, **dict(options.arch_kwargs))
    if options.mean is not None and options.std is not None:
        module = Normalized(module, options.mean, options.std)
    return module


def harden(model: str | Path | None = None, data: str | None = None, *,
           defenses: Sequence[str], out: Path, settings: HardenSettings | None = None,
           options: ModelOptions | None = None, from_scratch: bool = False,
           resume: bool = False, matrix: str | ThreatMatrix = "standard",
           transfer: bool = False,
           n_samples: int | None = None, device: torch.device | str | None = None,
           cell_time_limit: float | None = None, show_progress: bool = False,
           command: str = "", manager: PluginManager | None = None) -> HardenOutcome:
    """Harden ``model`` (a file, a bundled name, None for the default model) with
    ``defenses`` (specs such as ``pgd-at:steps=10``) on the train split of ``data``, auditing
    it before and after on the test split with ``matrix``. See the module docstring for the
    files written into ``out``; ``cell_time_limit`` as for `robustbench_lite.api.audit`.
    When a defense trains for randomized smoothing (`Defense.smoothing_sigma`, as
    ``gaussian-augmentation`` does) both audits add the smoothing certificate at its sigma."""
    settings = settings or HardenSettings()
    options = options or ModelOptions()
    manager = manager or default_plugin_manager()
    catalogue = catalogue_for(manager)
    recipe = build_recipe(defenses, catalogue)
    prepare_audit = partial(prepare, matrix=matrix, options=options, transfer=transfer,
                            smoothing_sigma=recipe.smoothing_sigma,
                            seed=settings.seed, n_samples=n_samples, device=device,
                            cell_time_limit=cell_time_limit, show_progress=show_progress,
                            command=command, manager=manager)
    before_job = prepare_audit(model, data, store=out / "before" / "results.sqlite")
    architecture = before_job.bundled.name if before_job.bundled is not None else options.arch
    train = load_dataset(before_job.data_spec, catalogue, "train") \
        if before_job.data_spec is not None else before_job.data
    recipe.prepare(DefenseContext(catalogue, train, before_job.model.device))
    before = run_job(before_job)
    starting = _starting_module(before_job.model, from_scratch, architecture, options,
                                manager)
    module = recipe.transform(starting)
    # A defense that wraps the network (a preprocessing step, a denoiser) makes a model the
    # architecture's weights alone would not reproduce: model.pt is then the only output.
    saved_architecture = architecture if module is starting else None
    start = "scratch" if from_scratch else before_job.model.sha256
    hardener = Hardener(module, recipe, train, settings, out, start)
    trained = bake(hardener.run(resume=resume, show_progress=show_progress))
    paths = save_model(trained, saved_architecture,
                       before_job.data.x[:1].to(before_job.model.device), out,
                       options.arch_kwargs)
    paths.update(_write_log(hardener.log, out))
    hardened = _reopen(paths, architecture, options, before_job.model, catalogue,
                       before_job.data) if module is starting \
        else _wrapped(trained, paths["torchscript"], before_job.model)
    after = run_job(prepare_audit(hardened, before_job.data,
                                  store=out / "after" / "results.sqlite"))
    sections = catalogue.report_sections_for(before.task.name)
    paths["before"] = write_outputs(before, out / "before", sections=sections)["report"]
    paths["after"] = write_outputs(after, out / "after", sections=sections)["report"]
    paths["comparison"] = out / "comparison.html"
    atomic_write_text(paths["comparison"], render_diff_html(before, after))
    return HardenOutcome(before, after, hardener.log, paths)


def _wrapped(trained: nn.Module, saved: Path, original: RobustModel) -> RobustModel:
    """A wrapped network (preprocessing, denoiser) as the Python module that was trained:
    the after-audit then reaches inside it (BPDA passes gradients through its rounding,
    which TorchScript would hide). It computes what the saved ``model.pt`` computes."""
    return RobustModel(trained.eval(), original.input_shape, original.num_classes,
                       f"{original.name} (hardened)", file_sha256(saved),
                       LoadInfo("python module (saved as model.pt)", notes=(
                           "audited as the trained Python module; model.pt holds it as "
                           "TorchScript",)), original.task, original.device)


def _reopen(paths: dict[str, Path], architecture: str | None, options: ModelOptions,
            original: RobustModel, catalogue: Catalogue, data: EvalData) -> RobustModel:
    """The saved hardened model, loaded back the way ``robust audit`` would load it (so the
    after-audit proves the file works)."""
    name = f"{original.name} (hardened)"
    if "safetensors" in paths:
        return open_model(paths["safetensors"], data, catalogue,
                          replace(options, arch=architecture, name=name), original.device)
    return open_model(paths["torchscript"], data, catalogue, ModelOptions(name=name),
                      original.device)


def _write_log(log: Sequence[EpochLog], out: Path) -> dict[str, Path]:
    rows = [{key: None if isinstance(value, float) and math.isnan(value) else value
             for key, value in asdict(entry).items()} for entry in log]  # NaN: no validation
    csv_path, json_path = out / "training_log.csv", out / "training_log.json"
    atomic_write_text(csv_path, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(json_path, json.dumps(encode_non_finite(rows), indent=2,
                                            allow_nan=False) + "\n")  # inf as "Infinity"
    return {"log_csv": csv_path, "log_json": json_path}

