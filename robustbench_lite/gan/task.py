"""The ``gan`` task: a discriminator's real/fake decision, and the objectives that flip it.

Every view of a GAN audit (`robustbench_lite.gan.views`) shows the engine one function
from its inputs (latents, or images) to D's realness logit, shaped ``(N, 1)``, and labels
saying which decision must hold: ``KEEP_FAKE`` (0: D calls the image generated; every
sample of the fool-D and fake-accepted views) or ``KEEP_REAL`` (1: D accepts it; the real
images, and G's samples in the ``*-rejected`` views, which look at robustness from G's
side). D *accepts* an image as real when its logit is positive. A sample is correct when
D's decision is its label; each objective flips it, and a sample whose decision is already
flipped on clean input counts as a success without an attack:

==========================  ======================  ==================================
objective                   input the attack moves  success (the host's test)
==========================  ======================  ==================================
``latent-z-fool-d``         z (prior std units)     D accepts G(z') as real
``latent-w-fool-d``         w (measured spread)     D accepts G(w') as real
``latent-z-rejected``       z                       D rejects G(z') it accepted
``latent-w-rejected``       w                       D rejects G(w') it accepted
``pixel-real-rejected``     real image pixels       D rejects the real image
``pixel-fake-accepted``     generated image pixels  D accepts the generated image
==========================  ======================  ==================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from robustbench_lite.errors import ModelDataMismatchError, ThreatModelError
from robustbench_lite.gan.report import GAN_SECTION
from robustbench_lite.tasks.base import Task
from robustbench_lite.tasks.objective import Objective
from robustbench_lite.threat import ThreatModel

if TYPE_CHECKING:
    from robustbench_lite.data.eval_data import EvalData
    from robustbench_lite.reports.sections import ReportSection

#: Labels: the decision D must keep on a sample.
KEEP_FAKE = 0
KEEP_REAL = 1
#: Class names of every GAN view's data, indexed by label.
DECISIONS = ("generated", "real")


def keeps(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Where D's decision is ``labels``' (a non-finite logit keeps nothing)."""
    logits = outputs.reshape(len(outputs), -1)[:, 0]
    decided_real = logits > 0
    return torch.where(labels == KEEP_REAL, decided_real, ~decided_real) & torch.isfinite(
        logits)


@dataclass(frozen=True)
class FlipDecision(Objective):
    """Flip D's decision from ``labels``: raise the logit of samples D should reject, lower
    it for samples D should accept. Loss: the signed logit (to maximise); margin: minus
    the loss (at most 0 once the decision flipped, up to the tie at logit 0)."""

    labels: torch.Tensor

    name: ClassVar[str] = "flip-decision"

    def _signed(self, outputs: torch.Tensor) -> torch.Tensor:
        logits = outputs.reshape(len(outputs), -1)[:, 0]
        sign = torch.where(self.labels == KEEP_REAL, -1.0, 1.0).to(logits)
        return sign * logits

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        return self._signed(outputs)

    def success(self, outputs: torch.Tensor) -> torch.Tensor:
        return ~keeps(outputs, self.labels)

    def margin(self, outputs: torch.Tensor) -> torch.Tensor:
        return -self._signed(outputs)


class LatentZFoolD(FlipDecision):
    """A generated sample, moved in z, accepted as real."""

    name = "latent-z-fool-d"


class LatentWFoolD(FlipDecision):
    """A generated sample, moved in w, accepted as real."""

    name = "latent-w-fool-d"


class LatentZRejected(FlipDecision):
    """A generated sample D accepted, moved in z, rejected."""

    name = "latent-z-rejected"


class LatentWRejected(FlipDecision):
    """A generated sample D accepted, moved in w, rejected."""

    name = "latent-w-rejected"


class PixelRealRejected(FlipDecision):
    """A real image, moved in pixel space, rejected."""

    name = "pixel-real-rejected"


class PixelFakeAccepted(FlipDecision):
    """A generated image, moved in pixel space, accepted as real."""

    name = "pixel-fake-accepted"


#: Each objective's success, in words for the report.
SUCCESS_WORDS = {
    LatentZFoolD.name: "D accepts the generated sample of the moved z as real",
    LatentWFoolD.name: "D accepts the generated sample of the moved w as real",
    LatentZRejected.name: "D rejects the generated sample of the moved z, which it accepted",
    LatentWRejected.name: "D rejects the generated sample of the moved w, which it accepted",
    PixelRealRejected.name: "D rejects the moved real image as generated",
    PixelFakeAccepted.name: "D accepts the moved generated image as real",
}

OBJECTIVES: dict[str, type[FlipDecision]] = {cls.name: cls for cls in (
    LatentZFoolD, LatentWFoolD, LatentZRejected, LatentWRejected, PixelRealRejected,
    PixelFakeAccepted)}


class GanTask(Task):
    """D's realness logit ``(N, 1)``; correct when D's decision (real iff logit > 0) is the
    label's. The objective is the view's (``latent-z-fool-d`` unless given)."""

    name = "gan"
    description = ("a discriminator's realness logit; a sample is correct when D's decision "
                   "(real when the logit is positive) is the one it should keep")
    version = 1
    report_sections: ClassVar[tuple[ReportSection, ...]] = (GAN_SECTION,)

    def __init__(self, objective: str = LatentZFoolD.name) -> None:
        if objective not in OBJECTIVES:
            raise ThreatModelError(f"no GAN objective {objective!r}; choose one of "
                                   f"{', '.join(OBJECTIVES)}")
        self.goal = OBJECTIVES[objective]

    def check(self, outputs: torch.Tensor, data: EvalData) -> None:
        if outputs.dim() != 2 or outputs.shape[1] != 1:
            raise ModelDataMismatchError(f"a GAN view must return one logit per sample, "
                                         f"(N, 1); got {tuple(outputs.shape)}")

    def correct(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return keeps(outputs, labels)

    def objective_type(self, threat: ThreatModel) -> type[Objective]:
        if threat.targeted:
            raise ThreatModelError("GAN objectives have no targeted threat models")
        return self.goal

    def objective(self, threat: ThreatModel, labels: torch.Tensor,
                  targets: torch.Tensor | None) -> Objective:
        self.objective_type(threat)
        return self.goal(labels)

    def explain(self, outputs: torch.Tensor, class_names: Sequence[str]
                ) -> list[tuple[str, float]]:
        probability = torch.sigmoid(outputs.detach().float().reshape(len(outputs), -1)[:, 0])
        return [("real" if float(p) > 0.5 else "generated", max(float(p), 1 - float(p)))
                for p in probability.cpu()]
