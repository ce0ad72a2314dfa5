"""``robust harden --task gan --defense d-at``: audit the GAN's discriminator, train the
pair with discriminator adversarial training (`robustbench_lite.gan.training`), save it,
audit it again with the same GAN matrix, and compare.

The ``d-at`` spec takes `AdversarialConfig`'s fields (``spaces`` joined by ``+``, e.g.
``d-at:spaces=latent-z+pixel,mix=0.5,z_eps=0.5``) and the training fields ``r1_gamma``,
``d_steps``, ``label_smoothing``, ``lr_g``, ``lr_d`` and ``ema_decay``
(`GanTrainingConfig`).

Output folder: the hardened pair (``gan.safetensors``, or ``generator.pt`` and
``discriminator.pt`` for other architectures), ``training_log.json``,
``gan_checkpoint.pt`` (resume with ``resume=True``), ``before/`` and ``after/`` (each a
full audit output; the after-report charts the training epochs) and ``comparison.html``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.api import usable_device
from robustbench_lite.atomic import atomic_write_text
from robustbench_lite.catalogue import catalogue_for
from robustbench_lite.errors import GanError
from robustbench_lite.gan.api import audit_gan, feature_extractor, real_images
from robustbench_lite.gan.files import save_pair
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.training import GanTrainingResult, train_gan
from robustbench_lite.gan.training_config import AdversarialConfig, GanTrainingConfig
from robustbench_lite.models.robust_model import state_dict_sha256
from robustbench_lite.params import check_types, parse_spec
from robustbench_lite.plugin_host import PluginManager, default_plugin_manager
from robustbench_lite.reports.diff import render_diff_html
from robustbench_lite.reports.outputs import write_outputs
from robustbench_lite.results import AuditResult

DEFENSE = "d-at"
#: Fields of `GanTrainingConfig` a ``d-at`` spec may set.
TRAINING_FIELDS = ("r1_gamma", "d_steps", "label_smoothing", "lr_g", "lr_d", "ema_decay")


@dataclass
class GanHardenOutcome:
    before: AuditResult
    after: AuditResult
    training: GanTrainingResult
    paths: dict[str, Path]


def parse_d_at(spec: str, epochs: int, batch_size: int, seed: int
               ) -> tuple[GanTrainingConfig, AdversarialConfig]:
    """The training and adversarial settings of a ``d-at[:k=v,...]`` spec; `GanError`
    naming the parameter otherwise."""
    name, params = parse_spec(spec, "defense", GanError)
    if name != DEFENSE:
        raise GanError(f"--task gan hardens with {DEFENSE!r} (discriminator adversarial "
                       f"training), not {name!r}")
    adversarial_fields = {f.name for f in dataclasses.fields(AdversarialConfig)}
    unknown = sorted(set(params) - adversarial_fields - set(TRAINING_FIELDS))
    if unknown:
        raise GanError(f"{DEFENSE} has no parameter {', '.join(map(repr, unknown))}; it takes "
                       f"{', '.join(sorted(adversarial_fields | set(TRAINING_FIELDS)))}")
    if "spaces" in params:
        params["spaces"] = tuple(str(params["spaces"]).split("+"))
    adversarial_params = {k: v for k, v in params.items() if k in adversarial_fields}
    training_params = {k: v for k, v in params.items() if k in TRAINING_FIELDS}
    check_types(AdversarialConfig, DEFENSE, adversarial_params, "defense", GanError)
    check_types(GanTrainingConfig, DEFENSE, training_params, "defense", GanError)
    training = GanTrainingConfig(epochs=epochs, batch_size=batch_size, seed=seed,
                                 **training_params)
    return training, AdversarialConfig(**adversarial_params)


def harden_gan(pair: GanPair, defense: str, out: Path, *, epochs: int, batch_size: int = 64,
               seed: int = 0, data: str | None = None, matrix: str = "standard",
               samples: int | None = None, feature_model: str | None = None,
               resume: bool = False, device: torch.device | str | None = None,
               cell_time_limit: float | None = None, show_progress: bool = False,
               command: str = "", manager: PluginManager | None = None
               ) -> GanHardenOutcome:
    """Audit ``pair``, train it with ``defense`` for ``epochs`` on the train split of
    ``data`` (default: digits; its test split measures quality and is audited), save it
    into ``out``, audit it again and compare."""
    manager = manager or default_plugin_manager()
    catalogue = catalogue_for(manager)
    training, adversarial = parse_d_at(defense, epochs, batch_size, seed)
    pair.to(usable_device(device))
    train = real_images(data, "train", pair, catalogue)
    test = real_images(data, "test", pair, catalogue)
    features = feature_extractor(feature_model, tuple(test.input_shape), catalogue)
    if features is not None:
        features.module.to(pair.device)
    audit = partial(audit_gan, data=data, matrix=matrix, samples=samples,
                    feature_model=feature_model, seed=seed, device=pair.device,
                    cell_time_limit=cell_time_limit, show_progress=show_progress,
                    command=command, manager=manager)
    before = audit(pair, store=out / "before" / "results.sqlite")
    trained = train_gan(pair.generator, pair.discriminator, train.x.to(pair.device),
                        test.x.to(pair.device), training, adversarial, features=features,
                        checkpoint_dir=out, resume=resume, show_progress=show_progress)
    hardened = GanPair(trained.generator, trained.discriminator, f"{pair.name} (d-at)",
                       state_dict_sha256(trained.generator, trained.discriminator),
                       pair.format, {**pair.metadata, "hardened": defense})
    paths = {f"model{index}": path for index, path in enumerate(save_pair(
        hardened, out, _metadata(pair, trained, defense)))}
    paths["log_json"] = out / "training_log.json"
    atomic_write_text(paths["log_json"], trained.to_json() + "\n")
    after = audit(hardened, store=out / "after" / "results.sqlite")
    after.gan["training"] = [dataclasses.asdict(record) for record in trained.records]
    sections = catalogue.report_sections_for("gan")
    paths["before"] = write_outputs(before, out / "before", sections=sections)["report"]
    paths["after"] = write_outputs(after, out / "after", sections=sections)["report"]
    paths["comparison"] = out / "comparison.html"
    atomic_write_text(paths["comparison"], render_diff_html(before, after))
    return GanHardenOutcome(before, after, trained, paths)


def _metadata(pair: GanPair, trained: GanTrainingResult, defense: str) -> dict[str, str]:
    last = trained.records[-1] if trained.records else None
    seconds = sum(record.seconds for record in trained.records)  # resumed epochs included
    values: dict[str, Any] = {"hardened_with": defense, "hardened_from": pair.sha256,
                              "training_seconds": f"{seconds:.1f}",
                              "epochs": str(len(trained.records))}
    if last is not None and last.fd is not None:
        values["test_fd"] = f"{last.fd:.4f}"
    return {key: str(value) for key, value in values.items()}
