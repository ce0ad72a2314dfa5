"""`AuditResult`: everything a report needs, as plain JSON-serialisable data.

``to_dict`` produces ``results.json`` (schema version `SCHEMA_VERSION`, documented in
``docs/results-schema.md``); `read_results` checks a stored one against the schema these
dataclasses' type hints describe (`robustbench_lite.results_schema`) and ``from_dict``
reads it back so reports can be re-rendered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from robustbench_lite.errors import ResultsFileError
from robustbench_lite.result_rows import (
    CertificateKeys,
    GanKeys,
    GateKeys,
    PluginKeys,
    TransferKeys,
)
from robustbench_lite.results_schema import (
    Count,
    Fraction,
    Keys,
    NonNegative,
    build,
    describe,
    load_document,
    validate,
)
from robustbench_lite.threat import RANDOM_TARGETS, norm_label, targeted_prefix

#: Version 2 adds the task, target modes, per-cell objectives and the stage notes; version 3
#: the judgement of randomised models (draws, standard errors); version 4 the objective of
#: threat summaries and curve points (tasks with several objectives per threat model) and
#: the ``gan`` object of GAN audits.
SCHEMA_VERSION = 4
#: Older versions `from_dict` still reads (their missing fields take their defaults).
READABLE_VERSIONS = (1, 2, 3, 4)


def scope(objective: str | None) -> str | None:
    """The objective a threat label must name: None for classification's (``untargeted``,
    ``targeted (MODE)``: the threat model decides it), the name for other tasks' (several
    may share a norm and eps)."""
    if objective is None or objective in ("", "untargeted") or \
            objective.startswith("targeted"):
        return None
    return objective


def threat_label(norm: str, eps: float, targeted: bool = False,
                 target_mode: str | None = None, objective: str | None = None) -> str:
    """A threat model in a table heading: ``Linf 0.1``, ``targeted L2 0.5``,
    ``targeted(least-likely) Linf 0.2``, ``latent-z-fool-d Linf 0.25`` (another task's
    objective is named, see `scope`)."""
    mode = (target_mode or RANDOM_TARGETS) if targeted else None
    named = scope(objective)
    return f"{named + ' ' if named else ''}{targeted_prefix(mode)}{norm_label(norm)} {eps:g}"


@dataclass
class ModelInfo:
    name: str
    sha256: str
    format: str
    trusted: bool
    architecture: str | None
    num_classes: Count
    input_shape: list[int]
    notes: list[str] = field(default_factory=list)


@dataclass
class DataInfo:
    name: str
    sha256: str
    n_samples: Count
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
    eps: NonNegative
    targeted: bool
    accuracy: Fraction | None
    success_rate: Fraction | None
    n_samples: Count
    mean_distance: NonNegative | None
    max_distance: NonNegative | None
    queries: Count
    seconds: float
    violations: Count = 0
    violation_details: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    batch_size: Count | None = None
    objective: str = "untargeted"
    target_mode: str | None = None
    n_attacked: Count | None = None
    targets_sha256: str | None = None
    standard_error: Fraction | None = None


@dataclass
class ThreatSummary:
    """Worst case at one threat model: per sample, robust only if every attack failed.
    ``success_rate``: share of attacked samples some attack brought to its objective."""

    norm: str
    eps: NonNegative
    accuracy: Fraction
    attacks: list[str]
    targeted: bool = False
    target_mode: str | None = None
    success_rate: Fraction | None = None
    standard_error: Fraction | None = None
    #: The objective, for tasks with several per threat model (see `scope`).
    objective: str | None = None


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
class Judgement:
    """How samples were judged. A ``randomised`` model (two forward passes of one input
    differ) is judged in expectation: each example over ``draws`` forward draws, twice
    (`robustbench_lite.host.expectation`); its accuracies are means of per-sample scores,
    each with a ``standard_error`` from the draws (``clean_standard_error`` for the clean
    accuracy). A deterministic model has one draw and no standard errors."""

    randomised: bool = False
    draws: Count = 1
    clean_standard_error: Fraction | None = None


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
    eps: NonNegative
    class_name: str
    n_samples: Count
    clean_accuracy: Fraction
    robust_accuracy: Fraction
    targeted: bool = False
    target_mode: str | None = None


@dataclass
class CurvePoint:
    """Accuracy at one eps of a robustness curve. ``source`` is ``grid`` (a cell of the
    matrix) or ``minimal distances`` (from a minimum-norm attack's per-sample distances)."""

    norm: str
    attack: str
    eps: NonNegative
    accuracy: Fraction
    source: str = "grid"
    objective: str | None = None


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

    index: Count
    attack: str
    norm: str
    eps: NonNegative
    true_label: str
    clean_label: str
    clean_confidence: float
    adversarial_label: str
    adversarial_confidence: float
    distance: NonNegative
    amplification: float
    clean_image: str
    perturbation_image: str
    adversarial_image: str


@dataclass
class RunInfo:
    seed: int
    device: str
    batch_size: Count
    command: str
    started: str
    seconds: float
    versions: dict[str, str]
    plugins: list[Annotated[dict[str, str | None], Keys(PluginKeys)]]


@dataclass
class AuditResult:
    model: ModelInfo
    data: DataInfo
    clean_accuracy: Fraction
    cells: list[CellResult]
    robust_accuracy: list[ThreatSummary]
    run: RunInfo
    matrix: dict[str, str] = field(default_factory=dict)
    mode: str = "full"
    per_class: list[PerClassRow] = field(default_factory=list)
    curves: list[CurvePoint] = field(default_factory=list)
    transfer: list[Annotated[dict[str, Any], Keys(TransferKeys)]] = field(default_factory=list)
    checks: list[SanityCheck] = field(default_factory=list)
    gates: list[Annotated[dict[str, Any], Keys(GateKeys)]] = field(default_factory=list)
    examples: list[AdversarialExample] = field(default_factory=list)
    certificate: Annotated[dict[str, Any], Keys(CertificateKeys)] = field(default_factory=dict)
    task: TaskInfo = field(default_factory=TaskInfo)
    notes: list[StageNote] = field(default_factory=list)
    judgement: Judgement = field(default_factory=Judgement)
    gan: Annotated[dict[str, Any], Keys(GanKeys)] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored fields as plain data, with ``schema_version`` (``results.json`` adds
        the derived verdict: `robustbench_lite.reports.outputs.results_document`)."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    def note(self, stage: str, subject: str, status: str, reason: str) -> None:
        """Record that a part of the audit is missing (see `StageNote`)."""
        self.notes.append(StageNote(stage, subject, status, reason))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AuditResult:
        """The result stored in ``raw`` (a ``results.json`` object, checked by
        `robustbench_lite.results_schema.validate`): unknown keys are ignored, missing
        optional fields take their defaults, and the strings ``"NaN"``, ``"Infinity"`` and
        ``"-Infinity"`` of float fields become floats again."""
        result: AuditResult = build(cls, raw)
        return result

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
        frame["threat"] = [threat_label(cell.norm, cell.eps, cell.targeted, cell.target_mode,
                                        cell.objective) for cell in self.cells]
        table = frame.pivot_table(index="attack", columns="threat", values="accuracy",
                                  aggfunc="first", sort=False)
        worst = {threat_label(row.norm, row.eps, row.targeted, row.target_mode,
                              row.objective): row.accuracy for row in self.robust_accuracy}
        table.loc["worst case"] = pd.Series(worst)
        return table


def read_results(path: Path) -> AuditResult:
    """The `AuditResult` stored in ``path``; `ResultsFileError` (one line, naming the file and
    the JSON path of the first problem) when it is too large or too deeply nested, not JSON,
    of an unknown schema version, or does not match the schema (a missing field, a value of
    the wrong type or out of range: see `robustbench_lite.results_schema`)."""
    raw = load_document(path)
    if "schema_version" not in raw:
        raise ResultsFileError(f"{path} has no schema_version; it is not a results.json of "
                               "robust audit")
    version = raw["schema_version"]
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        newer = isinstance(version, int | float) and not isinstance(version, bool) \
            and version > SCHEMA_VERSION
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise ResultsFileError(
            f"{path} has schema_version {describe(version)}, but this version of "
            f"robustbench_lite reads only {readable}" + (
                "; it was written by a newer version: upgrade robustbench_lite" if newer
                else ""))
    validate(raw, AuditResult, path)
    return AuditResult.from_dict(raw)
