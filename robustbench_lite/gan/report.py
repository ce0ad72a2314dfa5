"""The GAN section of the audit report: image quality, the views, image movement under
latent attacks, example grids and, after ``robust harden --task gan``, training curves.
Everything it shows comes from the result's ``gan`` object."""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.style
from matplotlib.figure import Figure

from robustbench_lite.reports.charts import STYLE, plain
from robustbench_lite.reports.sections import ReportSection
from robustbench_lite.result_rows import (
    GanEpochKeys,
    GanGridKeys,
    GanKeys,
    GanMovementKeys,
    GanViewKeys,
)
from robustbench_lite.results import AuditResult

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def training_charts(epochs: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Two SVG charts of the training epochs (losses; Fréchet distance), as ``title``,
    ``alt`` and ``data_uri``; [] without epochs."""
    if not epochs:
        return []
    x = [int(row["epoch"]) for row in epochs]
    series = {
        "losses": [("D loss", [_number(row.get("d_loss")) for row in epochs]),
                   ("G loss", [_number(row.get("g_loss")) for row in epochs])],
        "Fréchet distance": [("FD", [_number(row.get("fd")) for row in epochs])],
    }
    charts = []
    for title, lines in series.items():
        if all(math.isnan(v) for _, values in lines for v in values):
            continue
        with matplotlib.style.context(STYLE):
            figure = Figure(figsize=(5.4, 2.6), layout="constrained")
            axes = figure.add_subplot()
            for label, values in lines:
                axes.plot(x, values, marker="o", markersize=3, linewidth=1.2, label=label)
            axes.set(xlabel="epoch", title=plain(f"training: {title} per epoch"))
            axes.grid(alpha=0.3)
            axes.legend(frameon=False)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="svg", metadata={"Date": None})
        last = ", ".join(f"{label} {values[-1]:.3g}" for label, values in lines)
        charts.append({"title": f"training: {title} per epoch",
                       "alt": f"{title} over {len(x)} epochs; last epoch: {last}",
                       "data_uri": "data:image/svg+xml;base64," +
                       base64.b64encode(buffer.getvalue()).decode("ascii")})
    return charts


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _complete(row: Mapping[str, Any], shape: type[Any]) -> dict[str, Any]:
    """``row`` with every field of the `result_rows` dataclass ``shape`` (None if absent)."""
    return {**{f.name: None for f in dataclasses.fields(shape)}, **row}


def section_data(result: AuditResult) -> Mapping[str, Any]:
    """The ``gan`` object with every optional key present, and the training charts."""
    if not result.gan:
        return {"gan": {}, "training_charts": []}
    gan = _complete(result.gan, GanKeys)
    for key, shape in (("views", GanViewKeys), ("movement", GanMovementKeys),
                       ("grids", GanGridKeys), ("training", GanEpochKeys)):
        gan[key] = [_complete(row, shape) for row in gan[key] or []]
    return {"gan": gan, "training_charts": training_charts(gan["training"])}


GAN_SECTION = ReportSection(
    name="gan", title="GAN: discriminator, image quality and latent attacks",
    template="gan_section.html", template_dir=TEMPLATE_DIR, after="verdict",
    data=section_data)
