"""The AdvMix paper's Colour-MNIST experiment on colour-digits (Gowal et al., CVPR 2020).

Four classifiers with the same architecture (`DigitsCNN` on three channels), initialisation
seed, optimiser and number of epochs, trained on the colour-digits train split (where colour
gives the class away) through the hardening loop:

* ``nominal``: plain cross-entropy;
* ``pgd-at``: Linf PGD adversarial training at eps 0.1;
* ``randmix``: random style mixes;
* ``advmix``: worst-case style mixes.

Each is measured on the test split, whose colours are independent of the class (the
distribution shift), as clean accuracy and as accuracy under the ``advmix`` attack at the
semantic radius, and under Linf PGD at 0.1 for reference. The paper expects AdvMix >= RandMix
> adversarial training ~ nominal on the shifted split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.defenses.adversarial import PGDAT
from robustbench_lite.defenses.base import Defense, DefenseContext, Recipe, compose
from robustbench_lite.host.attack import attack_batch
from robustbench_lite.models.robust_model import LoadInfo, RobustModel
from robustbench_lite.models.zoo.digits_cnn import DigitsCNN
from robustbench_lite.semantic.attack import AdvMixAttack
from robustbench_lite.semantic.defenses import AdvMix, RandMix
from robustbench_lite.semantic.loading import load_generator
from robustbench_lite.threat import Norm, ThreatModel
from robustbench_lite.training.harden import Hardener, HardenSettings
from robustbench_lite.training.loop import accuracy, deterministic_torch

logger = logging.getLogger(__name__)

METHODS = ("nominal", "pgd-at", "randmix", "advmix")
DATASET = "colour-digits"
#: The columns of the result table, in order.
COLUMNS = ["method", "shifted_test_accuracy", "semantic_attack_accuracy",
           "linf_pgd_accuracy", "train_seconds"]


@dataclass(frozen=True)
class ExperimentSettings:
    """The shared training budget and the evaluation: ``n_test`` test samples (all when
    None), the semantic ``radius`` and the attack's ``attack_steps``/``attack_restarts``."""

    epochs: int = 15
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    radius: float = 2.0
    attack_steps: int = 20
    attack_restarts: int = 3
    n_test: int | None = None
    generator: str | None = None


def _defenses(method: str, settings: ExperimentSettings, generator: str) -> list[Defense]:
    if method == "nominal":
        return []
    if method == "pgd-at":
        return [PGDAT(eps=0.1)]
    if method == "randmix":
        return [RandMix(generator=generator, radius=settings.radius)]
    return [AdvMix(generator=generator, radius=settings.radius)]


def _robust_accuracy(model: RobustModel, data: EvalData, attack: Attack,
                     threat: ThreatModel, seed: int) -> float:
    """Accuracy under ``attack``, through the host's checks (`attack_batch`)."""
    outcome = attack_batch(attack, model, data.x, data.y, threat, seed)
    return float(outcome.correct.float().mean())


def train_method(method: str, train: EvalData, settings: ExperimentSettings,
                 catalogue: Catalogue, generator: str) -> tuple[nn.Module, float]:
    """One classifier trained from scratch with ``method``; returns it and its seconds."""
    defenses = _defenses(method, settings, generator)
    recipe = compose(defenses) if defenses else Recipe(())
    recipe.prepare(DefenseContext(catalogue, train, torch.device("cpu")))
    with deterministic_torch(settings.seed):
        module = DigitsCNN(num_classes=train.num_classes, in_channels=train.x.shape[1])
    started = time.perf_counter()
    hardener = Hardener(module, recipe, train, HardenSettings(
        epochs=settings.epochs, batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, seed=settings.seed, validation_fraction=0),
        None, f"scratch:{method}")
    trained = hardener.run(show_progress=False)
    return trained.requires_grad_(False), time.perf_counter() - started


def run_experiment(settings: ExperimentSettings, catalogue: Catalogue,
                   methods: Sequence[str] = METHODS) -> pd.DataFrame:
    """Train every method and measure it; one row per method, columns `COLUMNS`."""
    train = load_dataset(DATASET, catalogue, "train")
    test = load_dataset(DATASET, catalogue, "test")
    if settings.n_test is not None:
        test = test.subset(settings.n_test)
    generator = settings.generator or DATASET
    semantic = AdvMixAttack(generator=generator, steps=settings.attack_steps,
                            restarts=settings.attack_restarts).use_generator(
        load_generator(generator, catalogue))
    rows = []
    for method in methods:
        module, seconds = train_method(method, train, settings, catalogue, generator)
        model = RobustModel(module=module, input_shape=test.input_shape,
                            num_classes=test.num_classes, name=method, sha256="",
                            load_info=LoadInfo(format="trained in memory"))
        row = {
            "method": method,
            "shifted_test_accuracy": accuracy(module, test),
            "semantic_attack_accuracy": _robust_accuracy(
                model, test, semantic, ThreatModel(Norm.SEMANTIC, settings.radius),
                settings.seed),
            "linf_pgd_accuracy": _robust_accuracy(model, test, PGD(steps=20),
                                                  ThreatModel(Norm.LINF, 0.1), settings.seed),
            "train_seconds": seconds,
        }
        logger.info("%s: %s", method, row)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
