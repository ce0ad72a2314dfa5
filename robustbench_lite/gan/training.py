"""Training a GAN, optionally with discriminator adversarial training (D-AT).

Plain training: the non-saturating logistic loss with an R1 penalty on reals, Adam with
StyleGAN2's betas (0, 0.99), ``d_steps`` D steps per G step, optional one-sided label
smoothing.

D-AT (the ``adversarial`` argument): each D batch mixes real, generated and adversarial
examples. A fraction ``mix`` of the generated examples is replaced by adversarial ones,
split evenly among the chosen spaces: latent-space PGD (z or w) moves the latent within
``eps`` prior standard deviations so that G's sample looks real to D, and D learns to call
it fake; pixel-space PGD raises a generated image's realness within ``eps`` in [0, 1], and
D learns to call it fake. With ``pixel``, the same fraction of the reals is replaced by
reals whose realness PGD lowered, labelled real. The eps grow linearly over
``curriculum_epochs``. With ``train_generator`` G keeps training against the hardened D.
The settings: `robustbench_lite.gan.training_config`.

The defaults harden D for the given G (``train_generator`` off; ``mix`` 1, z eps 0.75,
w eps 0.5, 5 PGD steps, 2 curriculum epochs). Measured on the bundled digits GAN
(continuing 10 to 20 epochs, mean of six checkpoints): latent-z PGD (Linf
0.25 and 0.5 prior std, 20 steps) turns about 40% fewer of the samples D rejects into
accepted ones than before or than plain training, at unchanged FD. Most of that is D
becoming stricter (it rejects about 80% of generated samples instead of about 50%): at a
threshold set to each D's median logit on generated samples the success rates barely
differ. With G training alongside, G keeps re-learning what the hardened D accepts: at
every setting tried (mix, eps, steps, learning rates) the success rate fell by less and
FD rose by far more than 10%.

The generator the run returns is the exponential moving average of G's weights
(StyleGAN's G_ema, decay ``ema_decay`` per G step; 0 returns G itself): the raw G
oscillates with D, its average makes far better digits. FD and KID are measured on it.

Determinism and resuming: everything runs inside `deterministic_torch(seed)` with seeded
generators for the batch order and the latents. A checkpoint after each epoch holds the
modules (G, its average, D), optimisers, generators and log, and a fingerprint of what
decides the result (configs except ``epochs``, data, starting weights); resuming from it
gives the same final weights as an uninterrupted run, and may extend a run by raising
``epochs``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from robustbench_lite.errors import GanError
from robustbench_lite.gan.adversary import call_method, latent_pgd, pixel_pgd
from robustbench_lite.gan.losses import discriminator_loss, generator_loss, r1_penalty
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import FeatureExtractor, measure_quality
from robustbench_lite.gan.training_config import AdversarialConfig, GanTrainingConfig
from robustbench_lite.models.robust_model import state_dict_sha256
from robustbench_lite.training.checkpoint import load_checkpoint, save_checkpoint
from robustbench_lite.training.loop import deterministic_torch

logger = logging.getLogger(__name__)

CHECKPOINT = "gan_checkpoint.pt"

@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean losses (``g_loss`` None when G did not train), mean R1 penalty, FD
    and KID on the test images (None without features), the fraction of the final eps used
    (0 without D-AT) and the seconds its training steps took."""

    epoch: int
    d_loss: float
    g_loss: float | None
    r1: float
    fd: float | None
    kid: float | None
    d_accuracy: float | None
    eps: float
    seconds: float


@dataclass
class GanTrainingResult:
    """The trained modules (evaluation mode), the per-epoch log and the wall-clock seconds
    of this call."""

    generator: nn.Module
    discriminator: nn.Module
    records: list[EpochRecord]
    seconds: float
    config: GanTrainingConfig
    adversarial: AdversarialConfig | None = None
    feature_extractor: str | None = None

    def to_json(self) -> str:
        return json.dumps({"config": asdict(self.config),
                           "adversarial": None if self.adversarial is None
                           else asdict(self.adversarial),
                           "feature_extractor": self.feature_extractor,
                           "seconds": self.seconds,
                           "records": [asdict(record) for record in self.records]}, indent=2)


def tensor_sha256(x: Tensor) -> str:
    digest = hashlib.sha256(str(tuple(x.shape)).encode())
    digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _Trainer:
    """One training run (see `train_gan`)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, real_train: Tensor,
                 real_test: Tensor, config: GanTrainingConfig,
                 adversarial: AdversarialConfig | None, features: FeatureExtractor | None,
                 checkpoint_dir: Path | None) -> None:
        self.generator = generator
        self.pair = GanPair(generator, discriminator, "training", "", "module")
        self.config, self.adversarial, self.features = config, adversarial, features
        self.real_train, self.real_test = real_train, real_test
        self.checkpoint = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
        self.fingerprint = self._fingerprint()
        for parameter in [*generator.parameters(), *discriminator.parameters()]:
            parameter.requires_grad_(True)
        self.train_generator = adversarial is None or adversarial.train_generator
        self.average = copy.deepcopy(generator).eval().requires_grad_(False)
        self.averaged = GanPair(self.average, discriminator, "average", "", "module")
        self.optimiser_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g,
                                            betas=config.betas)
        self.optimiser_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d,
                                            betas=config.betas)
        self.order = torch.Generator().manual_seed(config.seed)
        self.latents = torch.Generator().manual_seed(config.seed + 1)
        self.records: list[EpochRecord] = []

    def _fingerprint(self) -> str:
        fields = {"config": {**asdict(self.config), "epochs": None},
                  "adversarial": None if self.adversarial is None else asdict(self.adversarial),
                  "train": tensor_sha256(self.real_train), "test": tensor_sha256(self.real_test),
                  "features": None if self.features is None else self.features.name,
                  "start": state_dict_sha256(self.pair.generator, self.pair.discriminator)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()
                              ).hexdigest()

    # ------------------------------------------------------------ checkpoints

    def save(self) -> None:
        if self.checkpoint is None:
            return
        state = {"fingerprint": self.fingerprint, "epoch": len(self.records),
                 "generator": self.pair.generator.state_dict(),
                 "average": self.average.state_dict(),
                 "discriminator": self.pair.discriminator.state_dict(),
                 "optimiser_g": self.optimiser_g.state_dict(),
                 "optimiser_d": self.optimiser_d.state_dict(),
                 "order": self.order.get_state(), "latents": self.latents.get_state(),
                 "torch": torch.get_rng_state(),
                 "records": [asdict(record) for record in self.records]}
        save_checkpoint(self.checkpoint, state)

    def resume(self) -> int:
        """Load the checkpoint (if any); the number of finished epochs."""
        state = load_checkpoint(self.checkpoint, self.fingerprint, GanError,
                                "checkpoint folder")
        if state is None:
            return 0
        if state["epoch"] > self.config.epochs:
            raise GanError(f"the checkpoint {self.checkpoint} has {state['epoch']} epochs, "
                           f"more than the {self.config.epochs} asked for; raise `epochs`")
        self.pair.generator.load_state_dict(state["generator"])
        self.average.load_state_dict(state["average"])
        self.pair.discriminator.load_state_dict(state["discriminator"])
        self.optimiser_g.load_state_dict(state["optimiser_g"])
        self.optimiser_d.load_state_dict(state["optimiser_d"])
        self.order.set_state(state["order"])
        self.latents.set_state(state["latents"])
        torch.set_rng_state(state["torch"])
        self.records = [EpochRecord(**record) for record in state["records"]]
        logger.info("resuming after epoch %d of %d", len(self.records), self.config.epochs)
        return len(self.records)

    # ------------------------------------------------------------ steps

    def _latents(self, n: int) -> Tensor:
        return torch.randn((n, self.pair.z_dim), generator=self.latents).to(self.pair.device)

    def _adversarial(self, settings: AdversarialConfig, real: Tensor, fake: Tensor, z: Tensor,
                     ramp: float, spread: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        """The D batch with a fraction ``mix`` of fakes (and, for pixel, reals) replaced."""
        count = max(1, round(settings.mix * len(fake)))
        chunks = torch.arange(count).tensor_split(len(settings.spaces))
        fake, real = fake.clone(), real.clone()
        common: dict[str, Any] = {"norm": settings.norm, "steps": settings.steps}
        for space, rows in zip(settings.spaces, chunks, strict=True):
            if len(rows) == 0:
                continue
            if space == "latent-z":
                moved = latent_pgd(self.pair, z[rows], space="z", eps=ramp * settings.z_eps,
                                   **common)
                with torch.no_grad():
                    fake[rows] = self.pair.generate(moved)
            elif space == "latent-w":
                moved = latent_pgd(self.pair, z[rows], space="w", eps=ramp * settings.w_eps,
                                   spread=spread, **common)
                with torch.no_grad():
                    fake[rows] = call_method(self.pair.generator, "synthesis", moved)
            else:
                fake[rows] = pixel_pgd(self.pair.discriminator, fake[rows],
                                       raise_realness=True, eps=ramp * settings.pixel_eps,
                                       **common)
        if "pixel" in settings.spaces:
            rows = torch.arange(min(count, len(real)))
            real[rows] = pixel_pgd(self.pair.discriminator, real[rows], raise_realness=False,
                                   eps=ramp * settings.pixel_eps, **common)
        return real, fake

    def _d_step(self, real: Tensor, ramp: float,
                spread: tuple[Tensor, Tensor] | None) -> tuple[float, float]:
        z = self._latents(len(real))
        with torch.no_grad():
            fake = self.pair.generate(z)
        shown = real
        if self.adversarial is not None and ramp > 0:
            shown, fake = self._adversarial(self.adversarial, real, fake, z, ramp, spread)
        discriminator = self.pair.discriminator
        loss = discriminator_loss(discriminator(shown), discriminator(fake),
                                  real_target=1.0 - self.config.label_smoothing)
        penalty = r1_penalty(discriminator, real, self.config.r1_gamma)
        self.optimiser_d.zero_grad(set_to_none=True)
        (loss + penalty).backward()  # type: ignore[no-untyped-call]
        self.optimiser_d.step()
        return float(loss.detach()), float(penalty.detach())

    def _g_step(self, n: int) -> float:
        discriminator = self.pair.discriminator
        discriminator.requires_grad_(False)
        try:
            loss = generator_loss(discriminator(self.pair.generate(self._latents(n))))
            self.optimiser_g.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimiser_g.step()
        finally:
            discriminator.requires_grad_(True)
        self._update_average()
        return float(loss.detach())

    @torch.no_grad()
    def _update_average(self) -> None:
        """G's exponential moving average (StyleGAN's G_ema): what the run returns."""
        weight = 1.0 - self.config.ema_decay
        trained = dict(self.generator.named_parameters())
        for name, parameter in self.average.named_parameters():
            parameter.lerp_(trained[name], weight)
        buffers = dict(self.generator.named_buffers())
        for name, buffer in self.average.named_buffers():
            buffer.copy_(buffers[name])

    def finish(self) -> None:
        """Put the moving average into the caller's generator module."""
        self.generator.load_state_dict(self.average.state_dict())

    def epoch(self, epoch: int) -> EpochRecord:
        started = time.perf_counter()
        ramp = self.adversarial.ramp(epoch) if self.adversarial is not None else 0.0
        spread = None
        if self.adversarial is not None and "latent-w" in self.adversarial.spaces:
            spread = self.pair.latent_spread(self.config.seed + epoch)
        self.pair.generator.train()
        self.pair.discriminator.train()
        order = torch.randperm(len(self.real_train), generator=self.order)
        d_losses, g_losses, penalties = [], [], []
        for index, start in enumerate(range(0, len(order), self.config.batch_size)):
            batch = self.real_train[order[start:start + self.config.batch_size]]
            d_loss, penalty = self._d_step(batch.to(self.pair.device), ramp, spread)
            d_losses.append(d_loss)
            penalties.append(penalty)
            if self.train_generator and (index + 1) % self.config.d_steps == 0:
                g_losses.append(self._g_step(self.config.batch_size))
        seconds = time.perf_counter() - started
        self.pair.generator.eval()
        self.pair.discriminator.eval()
        fd = kid = accuracy = None
        if self.features is not None:
            quality = measure_quality(self.averaged, self.real_test,
                                      generated=self.config.quality_samples,
                                      seed=self.config.seed, features=self.features)
            fd, kid, accuracy = quality.fd, quality.kid, quality.d_accuracy
        return EpochRecord(epoch + 1, sum(d_losses) / len(d_losses),
                           sum(g_losses) / len(g_losses) if g_losses else None,
                           sum(penalties) / len(penalties), fd, kid, accuracy, ramp, seconds)


def train_gan(generator: nn.Module, discriminator: nn.Module, real_train: Tensor,
              real_test: Tensor, config: GanTrainingConfig,
              adversarial: AdversarialConfig | None = None, *,
              features: FeatureExtractor | None, checkpoint_dir: Path | None = None,
              resume: bool = False, show_progress: bool = True) -> GanTrainingResult:
    """Train ``generator`` and ``discriminator`` (in place) on ``real_train`` (images
    ``(N, C, H, W)`` in [0, 1]) for ``config.epochs`` epochs, measuring FD and KID against
    ``real_test`` with ``features`` after each; with ``adversarial``, D-AT (module
    docstring). With ``checkpoint_dir``, a checkpoint after each epoch; ``resume`` continues
    from it. Deterministic under ``config.seed``. At the end ``generator`` holds G's moving
    average; both modules are returned in evaluation mode, parameters trainable."""
    if real_train.dim() != 4 or len(real_train) == 0:
        raise GanError(f"`real_train` must be a non-empty batch of images (N, C, H, W), got "
                       f"shape {tuple(real_train.shape)}")
    if features is not None and len(real_test) < 2:
        raise GanError("`real_test` needs at least 2 images to measure FD and KID; pass the "
                       "test split, or features=None")
    started = time.perf_counter()
    with deterministic_torch(config.seed):
        trainer = _Trainer(generator, discriminator, real_train, real_test, config,
                           adversarial, features, checkpoint_dir)
        done = trainer.resume() if resume else 0
        progress = tqdm(range(done, config.epochs), desc="training GAN", unit="epoch",
                        initial=done, total=config.epochs, disable=not show_progress)
        for epoch in progress:
            record = trainer.epoch(epoch)
            trainer.records.append(record)
            shown = {"D": round(record.d_loss, 3)}
            if record.g_loss is not None:
                shown["G"] = round(record.g_loss, 3)
            if record.fd is not None:
                shown["FD"] = round(record.fd, 2)
            progress.set_postfix(shown)
            logger.info("epoch %d: %s", record.epoch, shown)
            trainer.save()
        trainer.finish()
    return GanTrainingResult(generator.eval(), discriminator.eval(), trainer.records,
                             time.perf_counter() - started, config, adversarial,
                             None if features is None else features.name)
