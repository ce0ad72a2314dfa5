"""``robust harden``: train a model through defenses and compare audits before and after."""

from __future__ import annotations

from pathlib import Path

import click

from robustbench_lite.api import DEFAULT_MATRIX, ModelOptions
from robustbench_lite.cli.errors import command_line, configure_output, explain_errors
from robustbench_lite.cli.options import (
    cell_time_limit_option,
    check_output_folder,
    parse_model_options,
)
from robustbench_lite.hardening import harden
from robustbench_lite.reports.diff import diff_table, formatted_diff_table
from robustbench_lite.training.harden import CHECKPOINT, HardenSettings

DEFAULTS = HardenSettings()

EPILOG = """\b
Examples:
  robust harden --defense pgd-at                       # the default model on digits
  robust harden --defense pgd-at:steps=10,eps=0.1 --defense label-smoothing --epochs 15
  robust harden model.safetensors --arch preact-resnet18 --data cifar10:./cifar-10-batches-py \\
      --defense fast-at:eps=0.0314 --epochs 5 --out hardened/
  robust harden --defense pgd-at --out hardened/ --resume   # continue an interrupted run
  robust harden --defense ensemble-at:models=other.pt+digits-cnn   # examples from static models
"""


@click.command("harden", epilog=EPILOG)
@click.argument("model", required=False)
@click.option("--defense", "defense_specs", multiple=True, required=True,
              metavar="NAME[:k=v,...]", help="A defense (repeatable; see `robust plugins`), "
              "e.g. pgd-at:steps=10. Defenses compose; invalid combinations are refused.")
@click.option("--data", "data_spec", help="Dataset: its train split trains, its test split is "
              "audited. [default: the model's, digits for the default model]")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs,
              show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
              show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULTS.learning_rate, show_default=True, help="AdamW learning rate "
              "(cosine schedule).")
@click.option("--validation-fraction", type=click.FloatRange(0, 1, max_open=True),
              default=DEFAULTS.validation_fraction, show_default=True,
              help="Share of the training data held out for the per-epoch log.")
@click.option("--from-scratch", is_flag=True, help="Train a freshly initialised network of "
              "the model's architecture instead of fine-tuning the model.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its "
              "last epoch checkpoint.")
@click.option("--matrix", default=DEFAULT_MATRIX, show_default=True,
              help="Threat matrix of the audits before and after.")
@click.option("--transfer/--no-transfer", default=False, show_default=True,
              help="Include the transferability table in both audits.")
@click.option("--n-samples", type=click.IntRange(min=1), help="Audit only the first N "
              "test samples.")
@click.option("--arch", help="Architecture for a state_dict/safetensors file.")
@click.option("--arch-kwargs", help="JSON keyword arguments for --arch.")
@click.option("--mean", help="Per-channel normalisation mean folded into the model.")
@click.option("--std", help="Per-channel normalisation std folded into the model.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps, where present.")
@cell_time_limit_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("hardened"), show_default=True, help="Output directory.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the output paths.")
@explain_errors
def harden_command(model: str | None, defense_specs: tuple[str, ...], data_spec: str | None,
                   epochs: int, batch_size: int, lr: float, validation_fraction: float,
                   from_scratch: bool, resume: bool, matrix: str, transfer: bool,
                   n_samples: int | None, arch: str | None, arch_kwargs: str | None,
                   mean: str | None, std: str | None, seed: int, device: str,
                   cell_time_limit: float, out_dir: Path, quiet: bool) -> None:
    """Harden MODEL with defenses, then audit it before and after.

    Fine-tunes MODEL (with no MODEL: the built-in default model on the embedded digits)
    through the --defense recipe, saves the result as model.safetensors (when the
    architecture is known) and model.pt (TorchScript), logs loss and validation accuracy
    per epoch (training_log.csv), checkpoints every epoch (resume with --resume), audits
    before and after with the same --matrix (before/, after/) and writes comparison.html.
    """
    configure_output(quiet)
    target, kwargs, mean_values, std_values = parse_model_options(device, arch_kwargs, mean, std)
    check_output_folder(out_dir)
    if (out_dir / CHECKPOINT).is_file() and not resume:
        raise click.ClickException(f"{out_dir} holds a checkpoint of an earlier run; pass "
                                   "--resume to continue it, or choose another --out")
    settings = HardenSettings(epochs=epochs, batch_size=batch_size, learning_rate=lr,
                              seed=seed, validation_fraction=validation_fraction)
    outcome = harden(model, data_spec, defenses=defense_specs, out=out_dir, settings=settings,
                     options=ModelOptions(arch=arch, arch_kwargs=kwargs, mean=mean_values,
                                          std=std_values),
                     from_scratch=from_scratch, resume=resume, matrix=matrix,
                     transfer=transfer, n_samples=n_samples, device=target,
                     cell_time_limit=cell_time_limit or None, show_progress=not quiet,
                     command=command_line(click.get_current_context()))
    if not quiet:
        last = outcome.log[-1]
        if validation_fraction > 0:
            click.echo(f"\nEpoch {last.epoch}: validation clean {last.clean_accuracy:.2%}, "
                       f"adversarial {last.adversarial_accuracy:.2%}")
        table = formatted_diff_table(diff_table(outcome.before, outcome.after))
        click.echo(table.to_string(index=False))
    for label, key in (("Model", "safetensors"), ("Model", "torchscript"),
                       ("Log", "log_csv"), ("Comparison", "comparison")):
        if key in outcome.paths:
            click.echo(f"{label + ':':11s} {outcome.paths[key].resolve()}")
