"""Example images for the report: a few samples attacked again by the strongest attack of
the headline threat model, as clean image, amplified perturbation and adversarial image.

The audit's cells keep no adversarial images, so the chosen samples are attacked once more,
as one small batch through the host (`attack_batch`: seeded, verified); the labels and
confidences shown are those of this run, as the task reads the outputs (`Task.explain`).
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from robustbench_lite.attacks.base import Attack
from robustbench_lite.checks.base import strongest
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.grid import GridResult
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.host.attack import attack_batch, batch_seed
from robustbench_lite.matrix.presets import headline_indices
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import AdversarialExample
from robustbench_lite.tasks.base import Task
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)

#: Images smaller than this (in pixels, longest side) are enlarged by an integer factor.
MIN_SIDE = 96

#: ``batch_start`` of the examples' batch seed; no audit batch starts there.
EXAMPLES_BATCH = -1


def choose_samples(broken: np.ndarray, candidates: np.ndarray, labels: np.ndarray,
                   count: int) -> list[int]:
    """Up to ``count`` sample indices: broken samples first, one per class before a class
    repeats, then candidates the attack did not break."""
    chosen: list[int] = []
    for pool in (np.flatnonzero(broken), np.flatnonzero(candidates & ~broken)):
        first_of_class: dict[int, int] = {}
        for index in pool:
            first_of_class.setdefault(int(labels[index]), int(index))
        firsts = sorted(first_of_class.values())
        ordered = firsts + [int(index) for index in pool if int(index) not in firsts]
        chosen += ordered[:count - len(chosen)]
    return chosen


def png_data_uri(image: np.ndarray) -> str:
    """A ``data:image/png`` URI of ``image`` (C x H x W with C 1 or 3, values in [0, 1]),
    enlarged by nearest neighbour to at least `MIN_SIDE` pixels."""
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else \
        Image.fromarray(np.moveaxis(pixels, 0, -1))
    scale = max(1, math.ceil(MIN_SIDE / max(picture.size)))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def amplified(delta: np.ndarray) -> tuple[np.ndarray, float]:
    """The perturbation around mid-grey, scaled so its largest change reaches black or
    white; and the scale factor."""
    largest = float(np.abs(delta).max())
    factor = 0.5 / largest if largest > 0 else 1.0
    return 0.5 + factor * delta, factor


def capture_examples(model: RobustModel, data: EvalData, task: Task, attack: Attack,
                     threat: ThreatModel, indices: Sequence[int], seed: int,
                     targets: torch.Tensor | None = None) -> list[AdversarialExample]:
    """Attack the samples ``indices`` once more and describe each (``targets``: the host's
    targets of all samples, for a targeted threat model); empty when the images have
    neither 1 nor 3 channels. Exceptions from the attack propagate."""
    if not indices or data.x.shape[1] not in (1, 3):
        return []
    chosen = torch.tensor(list(indices))
    x = data.x[chosen].to(model.device)
    y = data.y[chosen].to(model.device)
    outcome = attack_batch(attack, model, x, y, threat,
                           batch_seed(seed, attack, threat, EXAMPLES_BATCH), task=task,
                           targets=None if targets is None else targets[chosen].to(x.device))
    with torch.no_grad():
        clean = task.explain(model(x), data.class_names)
    adversarial = task.explain(outcome.outputs, data.class_names)
    distances = threat.distances(outcome.x_adv, x).cpu()
    examples = []
    for row, index in enumerate(indices):
        original = x[row].cpu().numpy()
        attacked = outcome.x_adv[row].detach().cpu().numpy()
        perturbation, factor = amplified(attacked - original)
        examples.append(AdversarialExample(
            index=int(index), attack=attack.name, norm=threat.norm.value, eps=threat.eps,
            true_label=task.label_name(int(y[row]), data.class_names),
            clean_label=clean[row][0], clean_confidence=clean[row][1],
            adversarial_label=adversarial[row][0],
            adversarial_confidence=adversarial[row][1],
            distance=float(distances[row]), amplification=factor,
            clean_image=png_data_uri(original), perturbation_image=png_data_uri(perturbation),
            adversarial_image=png_data_uri(attacked)))
    return examples


def headline_examples(model: RobustModel, data: EvalData, task: Task,
                      threats: Sequence[ThreatModel], grid: GridResult,
                      settings: AuditSettings) -> list[AdversarialExample]:
    """Example images from the attack that broke the most samples at the verdict's first
    threat model (`headline_indices`) and, when the audit has one elsewhere, at the first
    semantic threat model (whose examples are new images, worth seeing)."""
    if not threats or settings.examples <= 0:
        return []
    shown = [threats[headline_indices(data.family, [(t.norm.value, t.eps, t.targeted)
                                                    for t in threats])[0]]]
    semantic = next((t for t in threats if not t.norm.is_lp), None)
    if semantic is not None and semantic not in shown:
        shown.append(semantic)
    examples: list[AdversarialExample] = []
    for threat in shown:
        best = strongest(outcome for outcome in grid.outcomes if outcome.threat == threat)
        if best is not None:
            chosen = choose_samples(best.attacked & ~best.robust, best.attacked,
                                    data.y.numpy(), settings.examples)
            goal = grid.goals.get(threat)
            examples += capture_examples(model, data, task, best.attack, threat, chosen,
                                         settings.seed,
                                         None if goal is None else goal.targets)
    return examples
