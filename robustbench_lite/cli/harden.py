"""``robust harden``: train a model through defenses and compare audits before and after."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from robustbench_lite.api import DEFAULT_MATRIX, ModelOptions
from robustbench_lite.cli.errors import command_line, configure_output, explain_errors
from robustbench_lite.cli.options import (
    cell_time_limit_option,
    check_output_folder,
    parse_model_options,
    refuse_given,
)
from robustbench_lite.gan.api import open_pair
from robustbench_lite.gan.harden import harden_gan, parse_d_at
from robustbench_lite.gan.matrices import gan_matrix
from robustbench_lite.gan.training import CHECKPOINT as GAN_CHECKPOINT
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
  robust harden --task gan --defense d-at              # the bundled digits GAN's discriminator
  robust harden --task gan --generator G.pt --discriminator D.pt --data real.npz \
      --defense d-at:spaces=latent-z+pixel,mix=0.5,z_eps=0.5 --epochs 10
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
@click.option("--task", type=click.Choice(["classification", "gan"]), default="classification",
              show_default=True, help="gan: harden a GAN's discriminator with d-at (MODEL: "
              "one file holding G and D; docs/gan.md).")
@click.option("--generator", "gan_generator", metavar="FILE",
              help="--task gan: the generator (safetensors or TorchScript).")
@click.option("--discriminator", "gan_discriminator", metavar="FILE",
              help="--task gan: the discriminator (safetensors or TorchScript).")
@click.option("--feature-model", metavar="FILE[@ARCH]", help="--task gan: the classifier "
              "whose penultimate layer measures image quality (see robust audit --help).")
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
                   mean: str | None, std: str | None, task: str, gan_generator: str | None,
                   gan_discriminator: str | None, feature_model: str | None, seed: int,
                   device: str,
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
    if task == "gan":
        _harden_gan(click.get_current_context(), model, defense_specs, target, out_dir)
        return
    if gan_generator or gan_discriminator or feature_model:
        raise click.UsageError("--generator, --discriminator and --feature-model describe a "
                               "GAN; add --task gan")
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


#: Options of classifier hardening that a GAN's does not use.
NOT_FOR_GAN = ("arch", "arch_kwargs", "mean", "std", "from_scratch", "validation_fraction",
               "lr", "transfer")


def _harden_gan(context: click.Context, model: str | None, defense_specs: tuple[str, ...],
                device: torch.device, out_dir: Path) -> None:
    """``robust harden --task gan``: d-at on the GAN (robustbench_lite.gan.harden)."""
    refuse_given(context, NOT_FOR_GAN, "with --task gan: the d-at spec sets the GAN's "
                 "training (docs/gan.md)")
    if len(defense_specs) != 1:
        raise click.UsageError("--task gan takes exactly one --defense: d-at[:k=v,...]")
    params = context.params
    resume = bool(params["resume"])
    if (out_dir / GAN_CHECKPOINT).is_file() and not resume:
        raise click.ClickException(f"{out_dir} holds a checkpoint of an earlier run; pass "
                                   "--resume to continue it, or choose another --out")
    parse_d_at(defense_specs[0], params["epochs"], params["batch_size"], params["seed"])
    gan_matrix(params["matrix"])  # typos fail before any file is read
    pair = open_pair(model, generator=params["gan_generator"],
                     discriminator=params["gan_discriminator"])
    quiet = bool(params["quiet"])
    outcome = harden_gan(pair, defense_specs[0], out_dir, epochs=params["epochs"],
                         batch_size=params["batch_size"], seed=params["seed"],
                         data=params["data_spec"], matrix=params["matrix"],
                         samples=params["n_samples"], feature_model=params["feature_model"],
                         resume=resume, device=device,
                         cell_time_limit=params["cell_time_limit"] or None,
                         show_progress=not quiet, command=command_line(context))
    if not quiet:
        records = outcome.training.records
        if records:
            seconds = sum(record.seconds for record in records)  # resumed epochs included
            click.echo(f"\nTrained {len(records)} epoch(s) in {seconds:.0f} s "
                       f"({seconds / len(records):.1f} s per epoch)")
        table = formatted_diff_table(diff_table(outcome.before, outcome.after))
        click.echo(table.to_string(index=False))
        for name, before in outcome.before.task.metrics.items():
            after = outcome.after.task.metrics.get(name, float("nan"))
            click.echo(f"{name}: {before:.4g} -> {after:.4g}")
    for key, path in outcome.paths.items():
        label = "Model" if key.startswith("model") else key.replace("_", " ").capitalize()
        click.echo(f"{label + ':':11s} {path.resolve()}")
