"""`AuditResult`: everything a report needs, as plain JSON-serialisable data.

``to_dict`` produces ``results.json`` (schema version `SCHEMA_VERSION`, documented in
``docs/results-schema.md``); ``from_dict`` reads it back so reports can be re-rendered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pandas as pd

from robustbench_lite.threat import RANDOM_TARGETS, norm_label, targeted_prefix

#: Version 2 adds the task, target modes, per-cell objectives and the stage notes.
SCHEMA_VERSION = 2
#: Older versions `from_dict` still reads (their missing fields take their defaults).
READABLE_VERSIONS = (1, 2)


def threat_label(norm: str, eps: float, targeted: bool = False,
                 target_mode: str | None = None) -> str:
    """A threat model in a table heading: ``Linf 0.1``, ``targeted L2 0.5``,
    ``targeted(least-likely) Linf 0.2``."""
    mode = (target_mode or RANDOM_TARGETS) if targeted else None
    return f"{targeted_prefix(mode)}{norm_label(norm)} {eps:g}"


@dataclass
class ModelInfo:
    name: str
    sha256: str
    format: str
    trusted: bool
    architecture: str | None
    num_classes: int
    input_shape: list[int]
    notes: list[str] = field(default_factory=list)


@dataclass
class DataInfo:
    name: str
    sha256: str
    n_samples: int
    source: str
    family: str
    class_names: list[str]


@dataclass
class CellResult:
    """One attack at one threat model. ``accuracy`` (share of all samples the task still
    judges correct under the attack) is None when the cell failed or was skipped
    (``error``/``skipped`` say why). ``success_rate`` is the share of attacked samples on
    which the attack reached its objective (targeted: the model predicts the target).
    ``objective`` names the task's objective; ``target_mode`` how targets were chosen and
    ``targets_sha256`` which targets they were (targeted cells only). ``batch_size`` is the
    smallest batch size in force when its units finished (halved on CUDA out-of-memory);
    None when every unit was read from the result store."""

    attack: str
    params: dict[str, Any]
    norm: str
    eps: float
    targeted: bool
    accuracy: float | None
    success_rate: float | None
    n_samples: int
    mean_distance: float | None
    max_distance: float | None
    queries: int
    seconds: float
    violations: int = 0
    violation_details: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    batch_size: int | None = None
    objective: str = "untargeted"
    target_mode: str | None = None
    n_attacked: int | None = None
    targets_sha256: str | None = None


@dataclass
class ThreatSummary:
    """Worst case at one threat model: per sample, robust only if every attack failed.
    ``success_rate``: share of attacked samples some attack brought to its objective."""

    norm: str
    eps: float
    accuracy: float
    attacks: list[str]
    targeted: bool = False
    target_mode: str | None = None
    success_rate: float | None = None


@dataclass
class StageNote:
    """A part of the audit that is missing, and why, in one line. ``stage`` is the part
    (``transfer``, ``examples``, ``certificate``, ``checks``, ``report``...), ``subject``
    what it concerns (a threat model, a check's name; empty for the whole stage),
    ``status`` ``not applicable`` or ``failed``."""

    stage: str
    subject: str
    status: str
    reason: str


@dataclass
class TaskInfo:
    """The task the audit judged the model by (`robustbench_lite.tasks`)."""

    name: str = "classification"
    version: int = 1
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class PerClassRow:
    """Clean and worst-case robust accuracy of one class at one threat model."""

    norm: str
    eps: float
    class_name: str
    n_samples: int
    clean_accuracy: float
    robust_accuracy: float
    targeted: bool = False
    target_mode: str | None = None


@dataclass
class CurvePoint:
    """Accuracy at one eps of a robustness curve. ``source`` is ``grid`` (a cell of the
    matrix) or ``minimal distances`` (from a minimum-norm attack's per-sample distances)."""

    norm: str
    attack: str
    eps: float
    accuracy: float
    source: str = "grid"


@dataclass
class SanityCheck:
    """One check of the evaluation itself. ``status`` is ``pass``, ``warn`` or ``fail``;
    ``message`` is one line a reviewer understands; ``details`` holds the numbers behind it."""

    name: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


#: Check statuses from best to worst.
CHECK_STATUSES = ("pass", "warn", "fail")


@dataclass
class AdversarialExample:
    """One sample attacked for illustration: PNG images as ``data:`` URIs (the perturbation
    scaled by ``amplification`` around mid-grey), labels and softmax confidences."""

    index: int
    attack: str
    norm: str
    eps: float
    true_label: str
    clean_label: str
    clean_confidence: float
    adversarial_label: str
    adversarial_confidence: float
    distance: float
    amplification: float
    clean_image: str
    perturbation_image: str
    adversarial_image: str


@dataclass
class RunInfo:
    seed: int
    device: str
    batch_size: int
    command: str
    started: str
    seconds: float
    versions: dict[str, str]
    plugins: list[dict[str, str | None]]


@dataclass
class AuditResult:
    model: ModelInfo
    data: DataInfo
    clean_accuracy: float
    cells: list[CellResult]
    robust_accuracy: list[ThreatSummary]
    run: RunInfo
    matrix: dict[str, str] = field(default_factory=dict)
    mode: str = "full"
    per_class: list[PerClassRow] = field(default_factory=list)
    curves: list[CurvePoint] = field(default_factory=list)
    transfer: list[dict[str, Any]] = field(default_factory=list)
    checks: list[SanityCheck] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    examples: list[AdversarialExample] = field(default_factory=list)
    certificate: dict[str, Any] = field(default_factory=dict)
    task: TaskInfo = field(default_factory=TaskInfo)
    notes: list[StageNote] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stored fields as plain data, with ``schema_version`` (``results.json`` adds
        the derived verdict: `robustbench_lite.reports.outputs.results_document`)."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    def note(self, stage: str, subject: str, status: str, reason: str) -> None:
        """Record that a part of the audit is missing (see `StageNote`)."""
        self.notes.append(StageNote(stage, subject, status, reason))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AuditResult:
        return cls(
            model=ModelInfo(**raw["model"]),
            data=DataInfo(**raw["data"]),
            clean_accuracy=raw["clean_accuracy"],
            cells=[CellResult(**cell) for cell in raw["cells"]],
            robust_accuracy=[ThreatSummary(**row) for row in raw["robust_accuracy"]],
            run=RunInfo(**raw["run"]),
            matrix=dict(raw.get("matrix", {})),
            mode=raw.get("mode", "full"),
            per_class=[PerClassRow(**row) for row in raw.get("per_class", [])],
            curves=[CurvePoint(**row) for row in raw.get("curves", [])],
            transfer=list(raw.get("transfer", [])),
            checks=[SanityCheck(**row) for row in raw.get("checks", [])],
            gates=list(raw.get("gates", [])),
            examples=[AdversarialExample(**row) for row in raw.get("examples", [])],
            certificate=dict(raw.get("certificate", {})),
            task=TaskInfo(**raw.get("task", {})),
            notes=[StageNote(**row) for row in raw.get("notes", [])],
        )

    def cells_frame(self) -> pd.DataFrame:
        """One row per cell (attack x threat model)."""
        columns = [f.name for f in fields(CellResult) if f.name != "violation_details"]
        rows = [{name: getattr(cell, name) for name in columns} for cell in self.cells]
        frame = pd.DataFrame(rows, columns=columns)
        frame["params"] = frame["params"].map(lambda params: ", ".join(
            f"{key}={value}" for key, value in params.items()))
        return frame

    def accuracy_table(self) -> pd.DataFrame:
        """Adversarial accuracy: one row per attack, one column per threat model, plus the
        worst-case row."""
        frame = self.cells_frame()
        frame["threat"] = [threat_label(cell.norm, cell.eps, cell.targeted, cell.target_mode)
                           for cell in self.cells]
        table = frame.pivot_table(index="attack", columns="threat", values="accuracy",
                                  aggfunc="first", sort=False)
        worst = {threat_label(row.norm, row.eps, row.targeted, row.target_mode): row.accuracy
                 for row in self.robust_accuracy}
        table.loc["worst case"] = pd.Series(worst)
        return table
