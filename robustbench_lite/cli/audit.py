"""``robust audit``: evaluate a model file against attacks and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.cli.errors import command_line, configure_output, explain_errors
from robustbench_lite.cli.options import parse_floats, parse_json_object, resolve_device
from robustbench_lite.data.resolve import DEFAULT_DATASET, load_dataset
from robustbench_lite.engine.audit import AuditSettings, run_audit
from robustbench_lite.errors import ModelLoadError
from robustbench_lite.models.architecture import Architecture
from robustbench_lite.models.loading import check_model_on_data, load_model
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.results import AuditResult
from robustbench_lite.threat import ThreatModel, parse_threat_spec
from robustbench_lite.threat_defaults import default_threats

DEFAULT_MODEL = "digits-cnn"
DEFAULT_ATTACKS = ("fgsm", "pgd")

EPILOG = """\b
Examples:
  robust audit                                  # built-in default model on digits
  robust audit model.pt --arch preact-resnet18 --data cifar10:./cifar-10-batches-py \\
      --mean 0.4914,0.4822,0.4465 --std 0.2471,0.2435,0.2616
  robust audit scripted.pt --data test.npz --threat linf:2/255,8/255 --attack pgd:steps=40
  robust audit whole_model.pt --trust-model     # pickled nn.Module: runs code from the file
"""


def _bundled_model(model: str | None, catalogue: Catalogue) -> Architecture | None:
    """The architecture with bundled weights that ``model`` names (None for a file)."""
    name = model or DEFAULT_MODEL
    if model is not None and Path(model).exists():
        return None
    if name in catalogue.architectures.names():
        arch = catalogue.architectures.get(name)
        if arch.weights is not None:
            if not arch.weights.is_file():
                raise ModelLoadError(f"the bundled weights of {name!r} are missing "
                                     f"({arch.weights}); reinstall the package")
            return arch
    return None


@click.command("audit", epilog=EPILOG)
@click.argument("model", required=False)
@click.option("--arch", help="Architecture for a state_dict/safetensors file: a built-in name "
              "or package.module:ClassName.")
@click.option("--arch-kwargs", help="JSON keyword arguments for --arch, e.g. "
              "'{\"num_classes\": 100}'.")
@click.option("--trust-model", is_flag=True, help="Allow loading a pickled nn.Module. This "
              "runs code from the file: only for files you trust.")
@click.option("--format", "format_name", help="Force a model adapter instead of detecting "
              "the format by content (see `robust plugins`).")
@click.option("--mean", help="Per-channel normalisation mean folded into the model, e.g. "
              "0.4914,0.4822,0.4465.")
@click.option("--std", help="Per-channel normalisation std folded into the model.")
@click.option("--data", "data_spec", help="Dataset: an embedded name (digits), a path "
              "(.npz, image folder, CIFAR-10 batches, MNIST IDX) or NAME:PATH. "
              "[default: digits]")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--n-samples", type=click.IntRange(min=1), help="Audit only the first N samples.")
@click.option("--attack", "attack_specs", multiple=True, metavar="NAME[:k=v,...]",
              help="Attack to run (repeatable), e.g. pgd:steps=40. [default: fgsm, pgd]")
@click.option("--threat", "threat_specs", multiple=True, metavar="NORM:EPS[,EPS...]",
              help="Threat models (repeatable), e.g. linf:0.1,8/255 or l2:1.0. "
              "[default: the dataset's Linf eps grid]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("robust-out"), show_default=True, help="Output directory.")
@click.option("--name", help="Model name shown in the report. [default: the file name]")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the output paths.")
@explain_errors
def audit_command(model: str | None, arch: str | None, arch_kwargs: str | None,
                  trust_model: bool, format_name: str | None, mean: str | None,
                  std: str | None, data_spec: str | None, split: str, n_samples: int | None,
                  attack_specs: tuple[str, ...], threat_specs: tuple[str, ...], seed: int,
                  batch_size: int, device: str, out_dir: Path, name: str | None,
                  quiet: bool) -> None:
    """Audit the robustness of MODEL (a model file or a built-in model name).

    With no MODEL, audits the built-in default model on the embedded digits data. The
    format of MODEL is detected by content: TorchScript, a torch.save state_dict or
    checkpoint (with --arch), safetensors (with --arch), or a pickled nn.Module (only with
    --trust-model). Writes report.html, results.json and cells.csv into --out.
    """
    configure_output(quiet)
    target, kwargs, mean_values, std_values = _parse_options(device, arch_kwargs, mean, std)
    manager = default_plugin_manager()
    catalogue = catalogue_for(manager)
    attacks = [build_attack(spec, catalogue) for spec in attack_specs or DEFAULT_ATTACKS]
    threats: list[ThreatModel] = [t for spec in threat_specs for t in parse_threat_spec(spec)]
    bundled = _bundled_model(model, catalogue)
    data = load_dataset(data_spec or (bundled.dataset if bundled and bundled.dataset
                                      else DEFAULT_DATASET), catalogue, split).subset(n_samples)
    threats = threats or default_threats(data.family)
    path: Path
    display_name: str | None
    if bundled is not None and bundled.weights is not None:
        what = "the built-in default model" if model is None else "the built-in model"
        click.echo(f"Auditing {what} {bundled.name!r} (bundled weights) on {data.name!r} "
                   f"({split} split, {len(data.x)} samples)")
        path, arch, display_name = bundled.weights, bundled.name, name or bundled.name
    else:
        model = str(model)
        click.echo(f"Auditing {model} on {data.name!r} ({split} split, {len(data.x)} samples)")
        path, display_name = Path(model), name
    robust_model = load_model(
        path, catalogue=catalogue, input_shape=data.input_shape, arch=arch,
        arch_kwargs=kwargs, trust_model=trust_model, mean=mean_values, std=std_values,
        name=display_name,
        num_classes=data.num_classes, format_name=format_name,
    ).to(target)
    check_model_on_data(robust_model, data)
    settings = AuditSettings(seed=seed, batch_size=batch_size, show_progress=not quiet,
                             command=command_line(click.get_current_context()))
    plugins = [{"name": info.name, "version": info.version}
               for info in manager.plugin_infos()]
    result = run_audit(robust_model, data, attacks, threats, settings, plugins)
    paths = write_outputs(result, out_dir)
    if not quiet:
        _print_summary(result)
    click.echo(f"Report:  {paths['report'].resolve()}")
    click.echo(f"Results: {paths['results'].resolve()}")


def _parse_options(device: str, arch_kwargs: str | None, mean: str | None, std: str | None
                   ) -> tuple[torch.device, dict[str, Any], list[float] | None,
                              list[float] | None]:
    """Parse option values before any work, so that a bad one fails at once with one line."""
    try:
        return (resolve_device(device), parse_json_object(arch_kwargs, "--arch-kwargs"),
                parse_floats(mean, "--mean"), parse_floats(std, "--std"))
    except click.BadParameter as exc:
        raise click.ClickException(exc.format_message()) from exc


def _print_summary(result: AuditResult) -> None:
    click.echo(f"\nClean accuracy: {result.clean_accuracy:.2%}")
    table = result.accuracy_table()
    click.echo(table.map(lambda v: "-" if v != v else f"{v:.2%}").to_string())
    for cell in result.cells:
        if cell.error:
            click.echo(f"Cell failed: {cell.attack} {cell.norm} {cell.eps:g}: {cell.error}",
                       err=True)
        elif cell.violations:
            click.echo(f"Invalid output not counted: {cell.attack} {cell.norm} {cell.eps:g}: "
                       f"{'; '.join(cell.violation_details)}", err=True)
