"""The audit: clean accuracy, then every (attack, threat model) cell, then the worst case.

Only samples the model classifies correctly are attacked (the others are not robust
anyway); per sample, the worst case over all attacks of a threat model is robust only if
every attack failed on it.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import torch
from tqdm.auto import tqdm

from robustbench_lite.attacks.base import Attack
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.engine.execute import attack_batch, batch_seed
from robustbench_lite.errors import NonFiniteOutputError
from robustbench_lite.models.robust_model import RobustModel
from robustbench_lite.results import (
    AuditResult,
    CellResult,
    DataInfo,
    ModelInfo,
    RunInfo,
    ThreatSummary,
)
from robustbench_lite.threat import ThreatModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditSettings:
    seed: int = 0
    batch_size: int = 128
    show_progress: bool = True
    command: str = ""


def fraction(mask: torch.Tensor) -> float:
    """Exact fraction of True entries (count / total, not a float32 mean)."""
    return int(mask.sum()) / len(mask) if len(mask) else 0.0


@torch.no_grad()
def clean_predictions(model: RobustModel, data: EvalData, batch_size: int) -> torch.Tensor:
    """Predicted labels on clean data; fails clearly on NaN or infinite logits."""
    predictions = []
    for start in range(0, len(data.x), batch_size):
        logits = model(data.x[start:start + batch_size].to(model.device))
        if not torch.isfinite(logits).all():
            raise NonFiniteOutputError(f"the model returned NaN or infinite logits on clean "
                                       f"samples {start}..{start + len(logits) - 1} of "
                                       f"{data.name!r}; its weights may be corrupt")
        predictions.append(logits.argmax(dim=1).cpu())
    return torch.cat(predictions)


def run_cell(model: RobustModel, data: EvalData, correct: torch.Tensor, attack: Attack,
             threat: ThreatModel, settings: AuditSettings) -> tuple[CellResult, torch.Tensor]:
    """Attack every correctly classified sample; return the cell and its robust mask."""
    robust = correct.clone()
    empty = CellResult(attack=attack.name, params=attack.params, norm=threat.norm.value,
                       eps=threat.eps, targeted=threat.targeted, accuracy=None,
                       success_rate=None, n_samples=len(data.x), mean_distance=None,
                       max_distance=None, queries=0, seconds=0.0)
    if not attack.supports(threat):
        return replace(empty, skipped=f"{attack.name} does not support {threat.label}"), robust
    indices = torch.nonzero(correct).flatten()
    distances: list[torch.Tensor] = []
    problems: list[str] = []
    queries = violations = 0
    started = time.perf_counter()
    label = f"{attack.name} {threat.label}"
    try:
        for start in tqdm(range(0, len(indices), settings.batch_size), desc=label,
                          unit="batch", leave=False, disable=not settings.show_progress):
            chosen = indices[start:start + settings.batch_size]
            x = data.x[chosen].to(model.device)
            y = data.y[chosen].to(model.device)
            outcome = attack_batch(attack, model, x, y, threat,
                                   batch_seed(settings.seed, attack, threat, int(chosen[0])))
            robust[chosen] = (outcome.predicted == y).cpu()
            distances.append(threat.distances(outcome.x_adv, x).cpu())
            queries += outcome.queries
            violations += int((~outcome.valid).sum())
            problems.extend(outcome.problems)
    except Exception as exc:
        logger.warning("%s failed: %s: %s", label, type(exc).__name__, exc)
        return replace(empty, queries=queries, seconds=time.perf_counter() - started,
                       error=f"{type(exc).__name__}: {exc}"), correct.clone()
    details = list(dict.fromkeys(problems))
    if details:
        logger.warning("%s returned invalid adversarial examples (not counted): %s", label,
                       "; ".join(details))
    all_distances = torch.cat(distances) if distances else torch.zeros(0)
    n_correct = int(correct.sum())
    return replace(
        empty, accuracy=fraction(robust),
        success_rate=1 - int(robust.sum()) / n_correct if n_correct else None,
        mean_distance=float(all_distances.mean()) if len(all_distances) else None,
        max_distance=float(all_distances.max()) if len(all_distances) else None,
        queries=queries, seconds=time.perf_counter() - started, violations=violations,
        violation_details=details,
    ), robust


def run_audit(model: RobustModel, data: EvalData, attacks: Sequence[Attack],
              threats: Sequence[ThreatModel], settings: AuditSettings,
              plugins: list[dict[str, str | None]]) -> AuditResult:
    """Evaluate ``model`` on ``data`` under every attack x threat model."""
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    correct = clean_predictions(model, data, settings.batch_size) == data.y
    cells: list[CellResult] = []
    summaries: list[ThreatSummary] = []
    for threat in threats:
        worst = correct.clone()
        counted: list[str] = []
        for attack in attacks:
            cell, robust = run_cell(model, data, correct, attack, threat, settings)
            cells.append(cell)
            if cell.accuracy is not None:
                worst &= robust
                counted.append(attack.name)
            logger.info("%-8s %-18s accuracy %s", attack.name, threat.label,
                        "-" if cell.accuracy is None else f"{cell.accuracy:.2%}")
        summaries.append(ThreatSummary(threat.norm.value, threat.eps,
                                       fraction(worst), counted))
    return AuditResult(
        model=ModelInfo(model.name, model.sha256, model.load_info.format,
                        model.load_info.trusted, model.load_info.architecture,
                        model.num_classes, list(model.input_shape),
                        list(model.load_info.notes)),
        data=DataInfo(data.name, data.sha256, len(data.x), data.source, data.family,
                      list(data.class_names)),
        clean_accuracy=fraction(correct),
        cells=cells,
        robust_accuracy=summaries,
        run=RunInfo(settings.seed, str(model.device), settings.batch_size, settings.command,
                    started_at, time.perf_counter() - started, environment_versions(),
                    plugins),
    )


def environment_versions() -> dict[str, str]:
    from robustbench_lite import __version__

    return {"robustbench_lite": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform()}
