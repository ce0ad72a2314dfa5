"""``robust train``: train an architecture deterministically and save it as safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import click
from safetensors.torch import save_file

from robustbench_lite.atomic import atomic_path
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import configure_output, explain_errors
from robustbench_lite.cli.options import parse_json_object
from robustbench_lite.data.resolve import DEFAULT_DATASET, load_dataset
from robustbench_lite.plugin_host import default_plugin_manager
from robustbench_lite.training.loop import (
    TrainingRecipe,
    accuracy,
    deterministic_torch,
    train_classifier,
)

DEFAULTS = TrainingRecipe()


@click.command("train")
@click.argument("arch")
@click.option("--data", "data_spec", default=DEFAULT_DATASET, show_default=True,
              help="Training data (its train split); accuracy is reported on its test split.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Output .safetensors file. [default: ARCH.safetensors]")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
              show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULTS.learning_rate, show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--arch-kwargs", help="JSON keyword arguments for ARCH, e.g. "
              "'{\"in_channels\": 3}'; recorded in the file, so it loads without --arch.")
@click.option("--quiet", "-q", is_flag=True)
@explain_errors
def train_command(arch: str, data_spec: str, out_path: Path | None, epochs: int,
                  batch_size: int, lr: float, seed: int, arch_kwargs: str | None,
                  quiet: bool) -> None:
    """Train the built-in architecture ARCH on --data and save its weights.

    Deterministic: the same command on the same kind of machine gives the same model.
    The bundled default model was made with the defaults:

    \b
    Examples:
      robust train digits-cnn --out digits_cnn.safetensors
      robust audit digits_cnn.safetensors
      robust train digits-cnn --data colour-digits --arch-kwargs '{"in_channels": 3}' \\
          --out colour_cnn.safetensors
    """
    configure_output(quiet)
    kwargs = parse_json_object(arch_kwargs, "--arch-kwargs")
    catalogue = catalogue_for(default_plugin_manager())
    architecture = catalogue.architectures.get(arch)
    train = load_dataset(data_spec, catalogue, "train")
    test = load_dataset(data_spec, catalogue, "test")
    recipe = TrainingRecipe(epochs=epochs, batch_size=batch_size, learning_rate=lr, seed=seed)
    with deterministic_torch(seed):
        module = architecture.create(**{"num_classes": train.num_classes, **kwargs})
        train_classifier(module, train, recipe, show_progress=not quiet)
        test_accuracy = accuracy(module, test)
    out = out_path or Path(f"{arch}.safetensors")
    with atomic_path(out) as temporary:
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(temporary),
                  metadata={"architecture": arch, "arch_kwargs": json.dumps(kwargs),
                            "dataset": data_spec,
                            "test_accuracy": f"{test_accuracy:.6f}"})
    click.echo(f"Test accuracy on {test.name!r}: {test_accuracy:.2%} ({len(test.x)} samples)")
    click.echo(f"Saved: {out.resolve()}")
