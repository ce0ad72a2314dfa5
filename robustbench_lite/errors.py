"""The library's error hierarchy.

The library raises these; the CLI turns them into one clear line and a non-zero exit code.
Every message names the problem and, where there is one, the fix. Messages name the
caller's arguments in backquotes (`argument`: ```arch_kwargs```), never as command-line
flags; the CLI shows them as its flags (``--arch-kwargs``).
"""

from __future__ import annotations

from collections.abc import Iterable


def argument(name: str) -> str:
    """How a message names the caller's argument ``name`` (the CLI shows its flag)."""
    return f"`{name}`"


class RobustbenchError(Exception):
    """Base class of every error the library raises on purpose."""


class UnknownNameError(RobustbenchError, KeyError):
    """A name (attack, dataset, architecture, ...) that no plugin registered."""

    kind = "name"

    def __init__(self, name: str, choices: Iterable[str]) -> None:
        self.name = name
        self.choices = sorted(choices)
        listed = ", ".join(self.choices) if self.choices else "(none registered)"
        super().__init__(f"unknown {self.kind} {name!r}; choose one of: {listed}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownAttackError(UnknownNameError):
    kind = "attack"


class UnknownDatasetError(UnknownNameError):
    kind = "dataset"


class UnknownArchitectureError(UnknownNameError):
    kind = "architecture"


class UnknownAdapterError(UnknownNameError):
    kind = "model format"


class UnknownMatrixError(UnknownNameError):
    kind = "threat matrix"


class UnknownCheckError(UnknownNameError):
    kind = "check"


class UnknownReportSectionError(UnknownNameError):
    kind = "report section"


class UnknownTaskError(UnknownNameError):
    kind = "task"


class MatrixError(RobustbenchError):
    """A threat-matrix file is malformed; the message names the line or field at fault."""


class PluginError(RobustbenchError):
    """A plugin failed to load or registered something invalid; the message names it."""


class DefenseError(RobustbenchError):
    """A defense or a combination of defenses cannot be used as given."""


class UnknownDefenseError(UnknownNameError):
    kind = "defense"


class ModelLoadError(RobustbenchError):
    """A model file is missing, corrupt, not a model, or does not match its architecture."""


class UntrustedModelError(ModelLoadError):
    """Loading the file would execute arbitrary code and the user did not opt in."""


class ModelDataMismatchError(RobustbenchError):
    """The model and the dataset disagree (input shape, class count)."""


class NonFiniteOutputError(RobustbenchError):
    """The model returned NaN or infinite logits."""


class ModelChangedError(RobustbenchError):
    """A plugin changed the model (weights, buffers, training mode, hooks) or torch's global
    settings, and the snapshot could not be put back."""


class DeviceError(RobustbenchError):
    """The requested device does not exist here or cannot hold a model."""


class DatasetError(RobustbenchError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class ThreatModelError(RobustbenchError, ValueError):
    """An invalid threat model (unknown norm, negative eps, unsupported by an attack)."""


class StoreError(RobustbenchError):
    """The result store cannot be used (corrupt file, newer schema, not a result store, I/O
    failure); the message names the file and the fix."""


class AttackError(RobustbenchError):
    """An attack could not run (bad parameters, unsupported threat model)."""


class ResultsFileError(RobustbenchError):
    """A results.json is missing, not JSON, of an unknown schema version or incomplete."""


class ReportTemplateError(RobustbenchError):
    """A report template is missing or broken."""


class GeneratorError(RobustbenchError):
    """A style generator cannot be opened or used as given (missing or corrupt file, wrong
    architecture, bad layer split, wrongly shaped styles)."""


class UnknownGeneratorError(UnknownNameError):
    kind = "generator"


class GanError(RobustbenchError):
    """A GAN (generator and discriminator) that cannot be loaded, trained or audited."""
