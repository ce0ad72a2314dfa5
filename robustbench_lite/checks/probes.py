"""Checks that probe the model before any attack runs, and switch on adaptive fallbacks.

On the probe batch (correctly classified samples): are input gradients zero or not finite,
does the model answer the same input differently, does it return probabilities, does it
have a non-differentiable step in front, does it compute gradients during its forward pass?
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from robustbench_lite.checks.adapt import (
    EOT_SAMPLES,
    expectation,
    log_probabilities,
    rescaled,
    straight_through,
)
from robustbench_lite.checks.base import Adaptation, Check, CheckContext, CheckStage
from robustbench_lite.results import SanityCheck
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

#: Share of probe samples with a zero or non-finite input gradient above which gradient
#: attacks are not trusted (warn up to `GRADIENT_FAIL`, fail above).
GRADIENT_WARN = 0.01
GRADIENT_FAIL = 0.10

#: Size of the random input change (Linf) used to see whether inputs matter at all.
NUDGE = 0.05


def input_gradients(model: ModelFn, x: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Gradient of ``objective``'s loss (what gradient attacks ascend; for classification the
    cross-entropy) with respect to ``x``, one per sample."""
    x = x.detach().clone().requires_grad_(True)
    loss = objective.loss(model(x)).sum()
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def probe_objective(context: CheckContext) -> Objective:
    """The task's untargeted objective on the probe batch, at the audit's first threat
    model's norm and eps (Linf 0 when there is none)."""
    first = context.threats[0] if context.threats else ThreatModel(Norm.LINF, 0.0)
    return context.task.objective(ThreatModel(first.norm, first.eps), context.probe_y, None)


def masked_share(grad: torch.Tensor) -> tuple[float, float]:
    """Shares of samples whose gradient is all zero, and that hold NaN or infinity."""
    flat = grad.flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    zero = finite & (flat == 0).all(dim=1)
    return float(zero.float().mean()), float((~finite).float().mean())


def _status(share: float) -> str:
    return "pass" if share <= GRADIENT_WARN else "warn" if share <= GRADIENT_FAIL else "fail"


class GradientCheck(Check):
    """Gradients: share of samples with zero, NaN or infinite input gradients. When logits
    divided by their spread give gradients again (a saturated softmax), gradient attacks are
    rerun on rescaled logits."""

    name = "input gradients"
    stage = CheckStage.BEFORE
    description = "Gradient attacks need non-zero, finite input gradients."

    def run(self, context: CheckContext) -> SanityCheck:
        x, goal = context.probe_x, probe_objective(context)
        zero, bad = masked_share(input_gradients(context.model, x, goal))
        details: dict[str, Any] = {"zero_share": zero, "non_finite_share": bad,
                                   "samples": len(x)}
        status = _status(zero + bad)
        if status == "pass":
            return SanityCheck(self.name, "pass", f"input gradients are finite and non-zero "
                               f"for {1 - zero - bad:.0%} of {len(x)} samples", details)
        rescaled_zero, rescaled_bad = masked_share(
            input_gradients(rescaled(context.model), x, goal))
        details["rescaled_zero_share"] = rescaled_zero
        message = (f"{zero:.0%} of {len(x)} samples have a zero input gradient and {bad:.0%} "
                   "a NaN or infinite one: gradient attacks see nothing there")
        if rescaled_zero + rescaled_bad < (zero + bad) / 2:
            context.adaptations.append(Adaptation(
                "rescaled", "the softmax is saturated (huge logits)", rescaled, layer=40))
            message += "; with rescaled logits they reappear, so gradient attacks are " \
                       "repeated on rescaled logits (+rescaled cells)"
        return SanityCheck(self.name, status, message, details)


class RandomnessCheck(Check):
    """Randomness: two forward passes of the same input disagree → the model is randomised
    and gradient attacks are repeated with Expectation over Transformation."""

    name = "deterministic model"
    stage = CheckStage.BEFORE
    description = "A randomised model needs attacks that average over its randomness (EOT)."

    def run(self, context: CheckContext) -> SanityCheck:
        first = context.probe_outputs()
        with torch.no_grad():
            second = context.model(context.probe_x)
        scale = float(first.abs().max().clamp_min(1e-12))
        change = float((first - second).abs().max()) / scale
        flipped = float((first.argmax(1) != second.argmax(1)).float().mean())
        details = {"relative_change": change, "prediction_flips": flipped}
        if context.draws == 1:  # the engine found the model deterministic (`is_randomised`)
            return SanityCheck(self.name, "pass", "two forward passes of the same input give "
                               "the same logits", details)
        context.adaptations.append(Adaptation(
            "eot", "the model is randomised", expectation(EOT_SAMPLES), layer=20))
        return SanityCheck(self.name, "warn",
                           f"the model is randomised: two passes of the same input differ by "
                           f"{change:.1%} of the logit scale and flip {flipped:.0%} of the "
                           f"predictions; gradient attacks are repeated with Expectation over "
                           f"Transformation ({EOT_SAMPLES} passes, +eot cells), and every "
                           f"example is judged in expectation over {context.draws} draws",
                           details)


class ProbabilitiesCheck(Check):
    """The model returns probabilities instead of logits (outputs in [0, 1] summing to 1):
    gradient attacks are repeated on their logarithm."""

    name = "logits, not probabilities"
    stage = CheckStage.BEFORE
    description = "Losses on probabilities instead of logits give vanishing gradients."

    def run(self, context: CheckContext) -> SanityCheck:
        out = context.probe_outputs()
        sums = out.sum(dim=1)
        probabilities = bool(((out >= 0) & (out <= 1)).all()) \
            and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3))
        details = {"min": float(out.min()), "max": float(out.max())}
        if not probabilities:
            return SanityCheck(self.name, "pass", "the model returns logits", details)
        context.adaptations.append(Adaptation(
            "log", "the model returns probabilities", log_probabilities, layer=30))
        return SanityCheck(self.name, "warn", "the model returns probabilities (outputs in "
                           "[0, 1] summing to 1), which flattens loss gradients; gradient "
                           "attacks are repeated on their logarithm (+log cells)", details)


class StepFunctionCheck(Check):
    """Non-differentiable preprocessing suspected: zero gradients although small input
    changes change the outputs. Gradient attacks are repeated with BPDA (identity backward
    through step functions)."""

    name = "differentiable preprocessing"
    stage = CheckStage.BEFORE
    description = "A quantising or JPEG-like step in the model hides its gradients."

    def run(self, context: CheckContext) -> SanityCheck:
        x, goal = context.probe_x, probe_objective(context)
        zero, _ = masked_share(input_gradients(rescaled(context.model), x, goal))
        generator = torch.Generator(device=x.device).manual_seed(context.seed)
        nudge = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * NUDGE
        with torch.no_grad():
            moved = float((context.probe_outputs() - context.model((x + nudge).clamp(0, 1)))
                          .abs().flatten(1).amax(dim=1).gt(0).float().mean())
        details = {"zero_share": zero, "outputs_moved_share": moved}
        if zero <= GRADIENT_WARN or moved == 0:
            return SanityCheck(self.name, "pass", "no sign of a non-differentiable step: "
                               "where inputs matter, gradients exist", details)
        bpda_zero, _ = masked_share(input_gradients(
            rescaled(straight_through(context.model)), x, goal))
        details["bpda_zero_share"] = bpda_zero
        message = (f"{zero:.0%} of samples have a zero input gradient although small input "
                   f"changes move {moved:.0%} of the outputs: a non-differentiable step "
                   "(quantisation, JPEG-like coding) is suspected")
        if bpda_zero < zero:
            context.adaptations.append(Adaptation(
                "bpda", "non-differentiable preprocessing", straight_through, layer=10))
            message += "; gradient attacks are repeated with BPDA (identity backward through " \
                       f"step functions, +bpda cells; {bpda_zero:.0%} still zero)"
        else:
            message += "; BPDA could not reach it (TorchScript or non-torch code): rely on " \
                       "Square and the transfer table"
        return SanityCheck(self.name, "fail", message, details)


@contextmanager
def _counting_gradient_calls() -> Iterator[list[str]]:
    """Count calls of torch.autograd.grad and torch.autograd.backward inside the block."""
    calls: list[str] = []
    originals = (torch.autograd.grad, torch.autograd.backward)

    def counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return function(*args, **kwargs)
        return wrapper

    torch.autograd.grad = counted("grad", originals[0])
    torch.autograd.backward = counted("backward", originals[1])
    try:
        yield calls
    finally:
        torch.autograd.grad, torch.autograd.backward = originals


class ForwardGradientsCheck(Check):
    """Test-time optimisation suspected: the model computes gradients during its forward
    pass, which plain gradient attacks do not differentiate through."""

    name = "no test-time optimisation"
    stage = CheckStage.BEFORE
    description = "A model that optimises at test time needs an adaptive attack."

    def run(self, context: CheckContext) -> SanityCheck:
        with _counting_gradient_calls() as calls:
            context.model(context.probe_x[:1])
        if not calls:
            return SanityCheck(self.name, "pass", "the forward pass computes no gradients",
                               {"gradient_calls": 0})
        return SanityCheck(self.name, "warn",
                           f"the forward pass called torch.autograd {len(calls)} time(s): "
                           "test-time optimisation is suspected and gradient attacks may "
                           "overestimate robustness; trust Square and the transfer table, or "
                           "write an adaptive attack", {"gradient_calls": len(calls)})


PROBE_CHECKS: tuple[type[Check], ...] = (
    GradientCheck, RandomnessCheck, ProbabilitiesCheck, StepFunctionCheck,
    ForwardGradientsCheck)
