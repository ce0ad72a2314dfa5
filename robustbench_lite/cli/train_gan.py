"""``robust train-gan``: train the digits GAN and save it."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.cli.errors import configure_output, explain_errors
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.gan.files import save_gan
from robustbench_lite.gan.networks import DigitsGanConfig, make_digits_gan
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import digits_features, measure_quality
from robustbench_lite.gan.training import train_gan
from robustbench_lite.gan.training_config import GanTrainingConfig
from robustbench_lite.plugin_host import default_plugin_manager

DEFAULTS = GanTrainingConfig()
DATASET = "digits"


@click.command("train-gan")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("digits_gan.safetensors"), show_default=True,
              help="Output .safetensors file holding G and D (replaced atomically).")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs,
              show_default=True, help="Passes over the train split.")
@click.option("--batch-size", type=click.IntRange(min=2), default=DEFAULTS.batch_size,
              show_default=True)
@click.option("--r1-gamma", type=click.FloatRange(min=0), default=DEFAULTS.r1_gamma,
              show_default=True, help="Weight of the R1 gradient penalty on real images.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, warnings only.")
@explain_errors
def train_gan_command(out_path: Path, epochs: int, batch_size: int, r1_gamma: float,
                      seed: int, quiet: bool) -> None:
    """Train the digits GAN (generator and discriminator) for the gan task.

    A StyleGAN2-style generator (mapping network, modulated convolutions, 8x8 grey
    output) and a small CNN discriminator, trained with the non-saturating loss and an R1
    penalty on the train split of digits. The Fréchet and kernel distances in the
    digits-cnn feature space (not Inception: these are not FID/KID numbers) and the
    discriminator's accuracy are measured on the test split and stored in the file's
    metadata. Deterministic under --seed; the bundled GAN was made with the defaults
    (about two minutes on one CPU core).

    \b
    Examples:
      robust train-gan --out digits_gan.safetensors
      robust train-gan --epochs 5 --seed 1 --out quick.safetensors
    """
    configure_output(quiet)
    catalogue = catalogue_for(default_plugin_manager())
    train = load_dataset(DATASET, catalogue, "train")
    test = load_dataset(DATASET, catalogue, "test")
    config = GanTrainingConfig(epochs=epochs, batch_size=batch_size, r1_gamma=r1_gamma,
                               seed=seed)
    architecture = DigitsGanConfig()
    generator, discriminator = make_digits_gan(architecture, seed)
    features = digits_features()
    result = train_gan(generator, discriminator, train.x, test.x, config, features=features,
                       show_progress=not quiet)
    pair = GanPair(result.generator, result.discriminator, out_path.stem, "", "module")
    quality = measure_quality(pair, test.x, generated=config.quality_samples, seed=seed,
                              features=features)
    metadata = {**config.as_metadata(), "seed": str(seed), "epochs": str(epochs),
                "training_seconds": f"{result.seconds:.1f}", "dataset": train.name,
                "dataset_sha256": train.sha256, "torch_version": torch.__version__,
                **{f"test_{key}": str(value) for key, value in quality.as_dict().items()}}
    save_gan(out_path, result.generator, result.discriminator, metadata)
    click.echo(f"Test split ({quality.real_samples} images vs {quality.generated_samples} "
               f"generated): FD {quality.fd:.2f}, KID {quality.kid:.2f} ± "
               f"{quality.kid_std:.2f} ({quality.feature_extractor}); D accuracy "
               f"{quality.d_accuracy:.1%} ({quality.d_real_accuracy:.1%} on real, "
               f"{quality.d_fake_accuracy:.1%} on generated)")
    click.echo(f"Trained in {result.seconds:.1f} s. Saved: {out_path.resolve()}")
