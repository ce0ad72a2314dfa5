"""Robustness curves (accuracy against eps) as SVG charts for the HTML report.

Each chart is an SVG ``data:`` URI: the report's Content-Security-Policy allows images only
from ``data:``, and an SVG shown through ``<img>`` never runs script. Charts are drawn on a
bare `matplotlib.figure.Figure` under matplotlib's default style (a user's matplotlibrc, e.g.
``text.usetex``, cannot change or break them) and are byte-identical for the same result.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.style
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import text_to_path
from matplotlib.ticker import PercentFormatter

from robustbench_lite.results import AuditResult, CurvePoint, scope
from robustbench_lite.threat import norm_label
from robustbench_lite.verdict import clean_accuracy_of

WORST = "worst case"
MINIMAL = "minimal distances"
#: Default style plus a fixed salt for the SVG's ids and glyphs drawn as paths (no fonts).
STYLE = ("default", {"svg.hashsalt": "robustbench-lite", "svg.fonttype": "path",
                     "font.size": 8.0})
MARKERS = "osD^vP*Xph<>"
WIDTH, HEIGHT, LEGEND_ROW = 5.4, 3.0, 0.16  # inches; the legend adds rows below the axes
#: Legend layout in points: a line handle with its gap to the text, the gap between columns,
#: and the room left for the figure's padding.
HANDLE, GAP, SPARE = 22.4, 16.0, 16.0


@dataclass(frozen=True)
class Chart:
    """One norm's robustness curves: ``data_uri`` is a ``data:image/svg+xml;base64,`` SVG for
    ``<img src>``; ``alt`` says in words what it shows (plain text, to be escaped by the
    template like any other text)."""

    norm: str
    title: str
    alt: str
    data_uri: str


def robustness_charts(result: AuditResult) -> list[Chart]:
    """One chart per norm (and objective, for tasks with several: `results.scope`) of
    ``result.curves``, in the order of ``result.robust_accuracy``
    (other norms after, in order of first appearance); [] without curve points. Points of
    another source than grid or minimal distances, and points whose eps or accuracy is not
    finite (NaN, infinite: nothing to plot), are left out."""
    points = [p for p in result.curves if p.source in ("grid", MINIMAL)
              and math.isfinite(p.eps) and math.isfinite(p.accuracy)]
    evaluated = [(scope(row.objective), row.norm) for row in result.robust_accuracy]
    keys = list(dict.fromkeys((scope(point.objective), point.norm) for point in points))
    keys.sort(key=lambda key: evaluated.index(key) if key in evaluated else len(evaluated))
    charts = []
    for objective, norm in keys:
        chart = norm_chart(norm, [p for p in points
                                  if (scope(p.objective), p.norm) == (objective, norm)],
                           clean_accuracy_of(result, objective))
        if objective is not None:
            chart = Chart(chart.norm, f"{objective}: {chart.title}",
                          f"{objective}: {chart.alt}", chart.data_uri)
        charts.append(chart)
    return charts


def norm_chart(norm: str, points: Sequence[CurvePoint], clean_accuracy: float) -> Chart:
    """The chart of one norm's curve points."""
    name = norm_label(norm)
    grid = curves(points, "grid")
    minimal = curves(points, MINIMAL)
    with matplotlib.style.context(STYLE):
        svg = draw(name, grid, minimal, clean_accuracy)
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
    return Chart(norm, f"{name}: accuracy against eps",
                 describe(name, grid, minimal, clean_accuracy), uri)


def curves(points: Sequence[CurvePoint], source: str) -> dict[str, list[tuple[float, float]]]:
    """(eps, accuracy) pairs by attack for one ``source``, sorted by eps; attacks in order of
    first appearance."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for point in points:
        if point.source == source:
            lines.setdefault(point.attack, []).append((point.eps, point.accuracy))
    return {attack: sorted(line) for attack, line in lines.items()}


def draw(name: str, grid: dict[str, list[tuple[float, float]]],
         minimal: dict[str, list[tuple[float, float]]], clean_accuracy: float) -> bytes:
    """The SVG document; grid lines start at (0, clean accuracy), the worst case is drawn
    last (on top) but listed first in the legend. A clean accuracy that is not finite is
    neither drawn nor a start point."""
    attacks = [a for a in grid if a != WORST]
    colours = {a: f"C{i % 10}" for i, a in enumerate(dict.fromkeys(attacks + list(minimal)))}
    entries: list[tuple[Line2D, str]] = []
    figure = Figure(layout="constrained")
    axes = figure.add_subplot()
    for index, attack in enumerate(attacks):
        (line,) = axes.plot(*from_clean(grid[attack], clean_accuracy), color=colours[attack],
                            marker=MARKERS[index % len(MARKERS)], markersize=4, linewidth=1.2,
                            clip_on=False)
        entries.append((line, attack))
    for attack, line_points in minimal.items():
        (line,) = axes.plot(*zip(*line_points, strict=True), color=colours[attack],
                            linestyle="--", linewidth=1.2, clip_on=False)
        entries.append((line, f"{attack} ({MINIMAL})"))
    if WORST in grid:
        (line,) = axes.plot(*from_clean(grid[WORST], clean_accuracy), color="black",
                            marker="o", markersize=5, linewidth=2.8, clip_on=False, zorder=5)
        entries.insert(0, (line, WORST))
    if math.isfinite(clean_accuracy):
        entries.append((axes.axhline(clean_accuracy, color="grey", linestyle=":",
                                     linewidth=1), f"clean accuracy {clean_accuracy:.1%}"))
    largest = max((eps for line in [*grid.values(), *minimal.values()] for eps, _ in line),
                  default=0.0)
    axes.set_xlim(0, largest or 1)
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    axes.set(xlabel=f"{name} eps", ylabel="accuracy", title=plain(f"{name}: accuracy against eps"))
    axes.grid(alpha=0.3)
    labels = [legend_label(label) for _, label in entries]
    column = HANDLE + max(text_width(label) for label in labels)
    ncols = max(1, min(3, int((WIDTH * 72 - SPARE + GAP) // (column + GAP))))
    figure.set_size_inches(WIDTH, HEIGHT + LEGEND_ROW * -(-len(labels) // ncols))
    figure.legend([line for line, _ in entries], [plain(label) for label in labels],
                  loc="outside lower center", ncols=ncols, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def from_clean(line: list[tuple[float, float]],
               clean_accuracy: float) -> tuple[list[float], list[float]]:
    """xs and ys of a grid line, starting at (0, clean accuracy) when it has no eps 0 (and
    the clean accuracy is finite)."""
    if line[0][0] > 0 and math.isfinite(clean_accuracy):
        line = [(0.0, clean_accuracy), *line]
    return [eps for eps, _ in line], [accuracy for _, accuracy in line]


def plain(text: str) -> str:
    """``text`` shown literally: matplotlib would read ``$...$`` as mathtext."""
    return text.replace("$", r"\$")


def text_width(text: str) -> float:
    """Width in points of ``text`` in the current font."""
    return text_to_path.get_text_width_height_descent(text, FontProperties(), ismath=False)[0]


def legend_label(text: str) -> str:
    """``text`` cut (with an ellipsis) to fit one legend column across the figure."""
    limit = WIDTH * 72 - SPARE - HANDLE
    while (width := text_width(text)) > limit:
        text = text[:max(1, int(len(text) * limit / width) - 2)] + "\u2026"
    return text


def describe(name: str, grid: dict[str, list[tuple[float, float]]],
             minimal: dict[str, list[tuple[float, float]]], clean_accuracy: float) -> str:
    """The chart in words for ``alt``, with the worst-case numbers."""
    names = [a for a in grid if a != WORST] + [f"{a} ({MINIMAL})" for a in minimal]
    if WORST in grid:
        names.append("the worst case")
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
    clean = f"{clean_accuracy:.1%}" if math.isfinite(clean_accuracy) else "not a number"
    text = f"Accuracy against {name} eps for {listed}; clean accuracy {clean}"
    if grid.get(WORST):
        text += "; worst case " + ", ".join(f"{accuracy:.1%} at eps {eps:g}"
                                            for eps, accuracy in grid[WORST])
    return text
