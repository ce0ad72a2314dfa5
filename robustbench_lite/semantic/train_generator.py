"""Training the colour-digits `MiniStyleGAN` (``robust train-generator``).

Choice: a style-modulated decoder trained with reconstruction (a variational auto-encoder
whose decoder is StyleGAN's mapping + synthesis networks), not adversarially. Why:

- the training split ties each class to its colour, so a discriminator learns that a 3 in a
  7's colour is fake; StyleGAN's style-mixing regularisation, judged by that discriminator,
  would push colour into the coarse layers together with the shape, the opposite of the
  split the semantic attack needs;
- GAN training of even this small model takes far longer than the minutes this command may
  take on a CPU, and its outcome varies with the seed; reconstruction training is stable
  and deterministic.

Losses per batch of train images ``x`` (a shuffled partner batch ``x'`` supplies fine styles):

- reconstruction: squared pixel error of ``synthesise(broadcast(map(z)))``, ``z`` sampled from
  the encoder's posterior, plus ``feature_weight`` times the squared error of the features
  of the bundled ``digits-cnn`` (a small network trained by this project; it stands in for
  the paper's VGG features) on the colour-free `shape_image`;
- mixing (our stand-in for StyleGAN's mixing regularisation, making the split hold): the
  coarse styles of ``x`` with the fine styles of ``x'`` must synthesise
  `colour_transfer(x, x')`, the digit of ``x`` in the colour of ``x'``, by the same two
  errors;
- ``kl_weight`` times the KL divergence of the posterior from ``N(0, I)``, so that
  ``map(z)`` with ``z ~ N(0, I)`` gives styles the synthesis network knows.

Deterministic under ``seed`` (`deterministic_torch`, seeded generators for batches and
posterior samples).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.semantic.measure import colour_transfer, load_shape_classifier, shape_image
from robustbench_lite.semantic.stylegan import (
    ColourDigitsGenerator,
    MiniStyleGAN,
    MiniStyleGANConfig,
    Synthesis,
)
from robustbench_lite.training.loop import deterministic_torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorTrainingConfig:
    """Hyperparameters of ``robust train-generator`` (the defaults made the bundled file)."""

    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 2e-3
    kl_weight: float = 0.1
    feature_weight: float = 0.05
    mixing_weight: float = 1.0
    seed: int = 0

    def as_metadata(self) -> dict[str, str]:
        return {f"train_{key}": str(value) for key, value in asdict(self).items()}


class _Objective:
    """The losses of the module docstring, for one batch."""

    def __init__(self, module: MiniStyleGAN, config: GeneratorTrainingConfig) -> None:
        self.module = module
        self.config = config
        self.features = load_shape_classifier().get_submodule("features")
        fine = torch.zeros(Synthesis.num_layers, 1, dtype=torch.bool)
        fine[list(ColourDigitsGenerator.fine_layers)] = True
        self.fine_mask = fine

    def image_error(self, produced: Tensor, target: Tensor) -> Tensor:
        pixels = (produced - target).square().flatten(1).sum(dim=1)
        features = (self.features(shape_image(produced))
                    - self.features(shape_image(target))).square().flatten(1).sum(dim=1)
        error: Tensor = (pixels + self.config.feature_weight * features).mean()
        return error

    def __call__(self, x: Tensor, partner: Tensor, noise: Tensor) -> dict[str, Tensor]:
        recoloured = colour_transfer(x, x[partner])
        images = torch.cat([x, recoloured])
        mean, log_variance = self.module.encoder(images)
        z = mean + noise * torch.exp(0.5 * log_variance)
        styles = self.module.styles(z)
        reconstruction = self.image_error(self.module.synthesis(styles), images)
        own = styles[:len(x)]
        mixed_styles = torch.where(self.fine_mask, own[partner], own)
        mixing = self.image_error(self.module.synthesis(mixed_styles), recoloured)
        kl = 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum(dim=1).mean()
        total = reconstruction + self.config.mixing_weight * mixing + self.config.kl_weight * kl
        return {"loss": total, "reconstruction": reconstruction, "mixing": mixing, "kl": kl}


def train_generator(data: EvalData, config: GeneratorTrainingConfig,
                    architecture: MiniStyleGANConfig | None = None,
                    show_progress: bool = True) -> ColourDigitsGenerator:
    """Train a `MiniStyleGAN` on ``data`` (colour-digits' train split) for ``config.steps``
    batches; returns it as a frozen `ColourDigitsGenerator` whose metadata holds the config
    and the training time. Deterministic under ``config.seed``."""
    architecture = architecture or MiniStyleGANConfig()
    started = time.perf_counter()
    with deterministic_torch(config.seed):
        module = MiniStyleGAN(architecture)
        objective = _Objective(module, config)
        optimiser = torch.optim.Adam(module.parameters(), lr=config.learning_rate,
                                     betas=(0.9, 0.99))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
        batches = torch.Generator().manual_seed(config.seed)
        noise = torch.Generator().manual_seed(config.seed + 1)
        module.train()
        order = torch.randperm(len(data.x), generator=batches)
        position = 0
        progress = tqdm(range(config.steps), desc="training generator", unit="step",
                        disable=not show_progress)
        for step in progress:
            if position + config.batch_size > len(order):
                order, position = torch.randperm(len(data.x), generator=batches), 0
            batch = order[position:position + config.batch_size]
            position += config.batch_size
            partner = torch.randperm(len(batch), generator=batches)
            eps = torch.randn((2 * len(batch), architecture.z_dim), generator=noise)
            losses = objective(data.x[batch], partner, eps)
            optimiser.zero_grad(set_to_none=True)
            losses["loss"].backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            optimiser.step()
            schedule.step()
            if step % 100 == 0 or step == config.steps - 1:
                values = {key: round(float(value.detach()), 4) for key, value in losses.items()}
                progress.set_postfix(values)
                logger.debug("step %d: %s", step, values)
    seconds = time.perf_counter() - started
    logger.info("trained the generator in %.1f s", seconds)
    metadata = {**config.as_metadata(), "training_seconds": f"{seconds:.1f}",
                "dataset": data.name, "dataset_sha256": data.sha256,
                "torch_version": torch.__version__}
    return ColourDigitsGenerator(module, metadata)
