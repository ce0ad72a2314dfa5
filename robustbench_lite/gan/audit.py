"""The GAN audit: every view (`robustbench_lite.gan.views`) through the engine, then image
quality, image movement under latent attacks and example grids, merged into one
`AuditResult` with a ``gan`` object.

Each view is an ordinary engine audit (stages, store, checks, notes) of a model from its
inputs to D's logit, judged by `GanTask` with the view's objective; its cells, worst cases
and curves keep their objective, so views sharing a norm and eps never mix. The
classification-only parts (transfer, certificates, per-class tables, pixel example images)
do not run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustbench_lite.attacks.base import Attack
from robustbench_lite.attacks.spec import build_attack
from robustbench_lite.catalogue import Catalogue
from robustbench_lite.checks.base import Check
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.audit import environment_versions, run_audit
from robustbench_lite.engine.examples import amplified, png_data_uri
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.gan.matrices import GanMatrix
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import (
    FeatureExtractor,
    GanQuality,
    discriminator_accuracy,
    measure_quality,
)
from robustbench_lite.gan.task import GanTask
from robustbench_lite.gan.views import LatentToRealness, View, ViewPlan, build_views
from robustbench_lite.host.attack import attack_batch, batch_seed
from robustbench_lite.matrix.presets import LATENT_FAMILY, standard_eps
from robustbench_lite.results import (
    AuditResult,
    DataInfo,
    ModelInfo,
    RunInfo,
    SanityCheck,
    StageNote,
    TaskInfo,
    threat_label,
)
from robustbench_lite.threat import Norm, ThreatModel

logger = logging.getLogger(__name__)

#: The sanity checks that apply to D's decision (the others reason about class logits or
#: pixel boxes).
GAN_CHECKS = ("input gradients", "eps = 0", "monotone in eps", "iterative beats single-step",
              "white box beats black box", "every attack ran", "valid adversarial examples")
#: Samples shown per example grid.
GRID_SAMPLES = 8
#: Each image of a grid is enlarged to at least this many pixels a side.
GRID_SIDE = 40


def run_gan_audit(pair: GanPair, real: EvalData, matrix: GanMatrix, settings: AuditSettings,
                  catalogue: Catalogue, plugins: list[dict[str, str | None]], *,
                  features: FeatureExtractor | None, checks: Sequence[Check] = (),
                  store: ResultStore | None = None, samples: int | None = None
                  ) -> AuditResult:
    """Audit ``pair``'s discriminator: every view of ``matrix`` on ``samples`` (default: the
    matrix's) latents drawn with the seed and held-out ``real`` images; quality in the
    feature space of ``features`` (None: not measured, noted)."""
    started = time.perf_counter()
    count = min(samples or matrix.samples, len(real.x))
    plan = ViewPlan(matrix.latent_eps(), matrix.pixel_eps(real.family), count)
    views = build_views(pair, real, plan, settings.seed)
    allowed = [check for check in checks if check.name in GAN_CHECKS]
    merged = _Merged()
    for view in views:
        specs = matrix.latent_attacks if view.latent else matrix.pixel_attacks
        attacks = [build_attack(spec, catalogue) for spec in specs]
        logger.info("view %s: %d samples, %d attacks x %d threat models", view.objective,
                    len(view.data.x), len(attacks), len(view.threats))
        result = run_audit(view.model, view.data, attacks, view.threats,
                           replace(settings, examples=0), plugins, task=GanTask(view.objective),
                           store=store, checks=allowed)
        merged.add(view, result)
    quality, quality_note = _quality(pair, real, count, settings.seed, features)
    if quality_note:
        merged.notes.append(StageNote("quality", "", "not applicable", quality_note))
    movement, grids = _movement(pair, views, catalogue, settings, features, merged.notes)
    w_views = [view.data.x.shape[1] for view in views if view.space == "w"]
    gan: dict[str, Any] = {
        **quality,
        "views": merged.views,
        "z_dim": pair.z_dim,
        "w_dim": int(w_views[0]) if w_views else None,
        "movement": movement,
        "grids": grids,
    }
    task = GanTask()
    return AuditResult(
        model=ModelInfo(pair.name, pair.sha256, pair.format, False, "gan", 1,
                        list(views[-1].data.input_shape),
                        [f"generator: {pair.metadata.get('generator', 'module')}",
                         f"discriminator: {pair.metadata.get('discriminator', 'module')}"]),
        data=DataInfo(f"{real.name} (held-out real) and {count} generated samples",
                      real.sha256, count, real.source, real.family, ["generated", "real"]),
        clean_accuracy=float(quality["d_accuracy"]),
        cells=merged.cells,
        robust_accuracy=merged.summaries,
        run=RunInfo(settings.seed, str(pair.device), settings.batch_size, settings.command,
                    merged.started_at or "", time.perf_counter() - started,
                    environment_versions(), plugins),
        matrix={"name": f"gan-{matrix.name}", "version": matrix.version},
        curves=merged.curves,
        checks=merged.checks,
        task=TaskInfo(task.name, task.version, task.description, _metrics(quality, movement)),
        notes=merged.notes,
        gan=gan,
    )


def _metrics(quality: dict[str, Any], movement: list[dict[str, Any]]) -> dict[str, float]:
    """The task's headline numbers: quality, D's accuracy on each side, and the fool-D
    success at the median threshold at the standard latent budgets (comparable across
    models whatever their thresholds)."""
    metrics = {key: float(quality[key]) for key in ("fd", "kid", "d_accuracy",
                                                    "d_real_accuracy", "d_fake_accuracy")
               if quality.get(key) is not None}
    standard = standard_eps(LATENT_FAMILY)
    for row in movement:
        value = row.get("median_threshold_success_rate")
        if "fool" in row["objective"] and value is not None and \
                math.isclose(row["eps"], standard.get(Norm(row["norm"]), math.nan)):
            metrics[f"{row['objective']} success at the median threshold, "
                    f"{threat_label(row['norm'], row['eps'])}"] = float(value)
    return metrics


class _Merged:
    """The views' results, with each row naming its objective."""

    def __init__(self) -> None:
        self.cells: list[Any] = []
        self.summaries: list[Any] = []
        self.curves: list[Any] = []
        self.checks: list[SanityCheck] = []
        self.notes: list[StageNote] = []
        self.views: list[dict[str, Any]] = []
        self.started_at: str | None = None

    def add(self, view: View, result: AuditResult) -> None:
        objective = view.objective
        self.started_at = self.started_at or result.run.started
        self.cells += result.cells  # the grid names each cell's objective
        self.summaries += [replace(row, objective=objective) for row in result.robust_accuracy]
        self.curves += [replace(point, objective=objective) for point in result.curves]
        self.checks += [replace(check, name=f"{check.name} ({objective})")
                        for check in result.checks]
        self.notes += [replace(note, subject=f"{objective}{': ' if note.subject else ''}"
                                              f"{note.subject}") for note in result.notes]
        self.views.append({"objective": objective, "space": view.space,
                           "n_samples": len(view.data.x),
                           "clean_accuracy": result.clean_accuracy, "data": view.data.name})


def _quality(pair: GanPair, real: EvalData, count: int, seed: int,
             features: FeatureExtractor | None) -> tuple[dict[str, Any], str | None]:
    """The ``gan`` object's quality keys; a note when no feature space applies."""
    if features is not None:
        measured: GanQuality = measure_quality(pair, real.x, generated=max(count, len(real.x)),
                                               seed=seed, features=features)
        return measured.as_dict(), None
    _, fakes = pair.sample(len(real.x), seed)
    overall, on_real, on_fake = discriminator_accuracy(pair, real.x, fakes)
    return ({"d_accuracy": overall, "d_real_accuracy": on_real, "d_fake_accuracy": on_fake,
             "feature_extractor": None, "fd": None, "kid": None,
             "real_samples": len(real.x), "generated_samples": len(real.x)},
            "no feature space for these images: Fréchet and kernel distances need a "
            "classifier of the same image shape (--feature-model)")


def _movement(pair: GanPair, views: Sequence[View], catalogue: Catalogue,
              settings: AuditSettings, features: FeatureExtractor | None,
              notes: list[StageNote]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For every latent view and threat model: how far G's image moved under PGD (pixel L2
    and Linf, feature distance); example grids of the fool-D views at their largest Linf
    eps."""
    attack = build_attack("pgd:steps=50,restarts=1", catalogue)
    movement: list[dict[str, Any]] = []
    grids: list[dict[str, Any]] = []
    for view in views:
        if not view.latent:
            continue
        module = view.model.module
        if not isinstance(module, LatentToRealness):
            continue
        largest = max((t for t in view.threats if t.norm is Norm.LINF),
                      key=lambda t: t.eps, default=None)
        for threat in view.threats:
            try:
                row, grid = _moved(view, module, attack, threat, settings, features,
                                   with_grid=threat is largest and "fool" in view.objective)
            except Exception as exc:  # one row lost, the audit goes on
                notes.append(StageNote("movement", f"{view.objective} {threat.label}",
                                       "failed", f"{type(exc).__name__}: {exc}"))
                continue
            movement.append(row)
            if grid is not None:
                grids.append(grid)
    return movement, grids


def _moved(view: View, module: LatentToRealness, attack: Attack, threat: ThreatModel,
           settings: AuditSettings, features: FeatureExtractor | None, *, with_grid: bool
           ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    device = view.model.device
    x, y = view.data.x.to(device), view.data.y.to(device)
    task, seed = GanTask(view.objective), batch_seed(settings.seed, attack, threat, 0)
    judged = attack_batch(attack, view.model, x, y, threat, seed, task=task)
    with torch.no_grad():
        logits = view.model(x)
    attacked = task.correct(logits, y)
    # The same attack against D with its threshold moved to the median logit of these
    # samples: a success rate that a D made stricter or laxer (a shifted bias) cannot move.
    median = float(logits.median())
    recentred = attack_batch(attack, lambda images: view.model(images) - median, x, y,
                             threat, seed, task=task)
    balanced_attacked = task.correct(logits - median, y)
    with torch.no_grad():
        before, after = module.images(x), module.images(judged.x_adv)
    delta = (after - before).flatten(1)
    l2 = delta.norm(dim=1).cpu().numpy()
    linf = delta.abs().amax(dim=1).cpu().numpy()
    success = (judged.success & attacked).cpu().numpy()
    row: dict[str, Any] = {
        "objective": view.objective, "norm": threat.norm.value, "eps": threat.eps,
        "attack": attack.name, "n_samples": len(x),
        "success_rate": _share(judged.success & attacked, attacked),
        "pixel_l2": float(l2.mean()), "pixel_linf": float(linf.mean()),
        "pixel_l2_successful": float(l2[success].mean()) if success.any() else None,
        "median_threshold": median,
        "median_threshold_success_rate": _share(recentred.success & balanced_attacked,
                                                balanced_attacked),
    }
    if features is not None:
        distance = np.linalg.norm(features.features(after) - features.features(before), axis=1)
        row["feature_distance"] = float(distance.mean())
        row["feature_distance_successful"] = float(distance[success].mean()) \
            if success.any() else None
    grid = None
    if with_grid:
        order = np.concatenate([np.flatnonzero(success), np.flatnonzero(~success)])
        chosen = torch.as_tensor(order[:GRID_SAMPLES], device=device)
        grid = {"objective": view.objective, "norm": threat.norm.value, "eps": threat.eps,
                "attack": attack.name,
                "image": grid_image([before[chosen], after[chosen],
                                     _amplified(after[chosen] - before[chosen])]),
                "caption": "rows: G's sample; the sample after the latent attack; the "
                           "difference, amplified around grey (successful attacks first)"}
    return row, grid


def _share(hits: Tensor, among: Tensor) -> float | None:
    """The share of ``among`` that ``hits`` holds; None when ``among`` is empty."""
    count = int(among.sum())
    return int((hits & among).sum()) / count if count else None


def _amplified(delta: Tensor) -> Tensor:
    return torch.from_numpy(amplified(delta.detach().cpu().numpy())[0])


def grid_image(rows: Sequence[Tensor]) -> str:
    """A PNG data URI of image rows (each ``(k, C, H, W)`` in [0, 1]) with white gaps."""
    scale = max(1, -(-GRID_SIDE // max(rows[0].shape[-2:])))
    big = [row.detach().float().cpu().repeat_interleave(scale, -1)
           .repeat_interleave(scale, -2) for row in rows]
    k, channels, height, width = big[0].shape
    gap = max(1, scale // 2)
    canvas = torch.ones(channels, len(big) * (height + gap) - gap, k * (width + gap) - gap)
    for r, row in enumerate(big):
        for c in range(k):
            top, left = r * (height + gap), c * (width + gap)
            canvas[:, top:top + height, left:left + width] = row[c]
    return png_data_uri(canvas.numpy())
