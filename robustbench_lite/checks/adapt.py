"""Adaptive fallbacks: model changes that let gradient attacks see through gradient masking.

Each `Adaptation` wraps the model function a gradient attack differentiates; the host still
judges success on the real model. `adapted` turns an attack into ``NAME+TAG`` that runs on the
wrapped model, so the adaptive cells count in the worst case next to the plain ones. The
objective is passed through unchanged, and the adapted attack serves exactly the objectives
its inner attack serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from robustbench_lite.attacks.base import Attack
from robustbench_lite.checks.base import Adaptation
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import ThreatModel

#: Forward passes averaged by Expectation over Transformation.
EOT_SAMPLES = 8

#: Operations whose gradient is zero almost everywhere; BPDA passes the gradient straight
#: through them (identity backward), as Athalye et al. (ICML 2018) do for quantisation.
_STEP_FUNCTIONS = frozenset({
    torch.round, torch.floor, torch.ceil, torch.trunc, torch.sign,
    torch.Tensor.round, torch.Tensor.floor, torch.Tensor.ceil, torch.Tensor.trunc,
    torch.Tensor.sign, torch.Tensor.__floordiv__, torch.floor_divide,
})
_DETACH = frozenset({torch.Tensor.detach, torch.detach})


class _StraightThrough(TorchFunctionMode):
    """Inside a forward pass: step functions and ``detach`` keep their values but pass the
    gradient through unchanged."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _DETACH:
            return args[0]
        out = func(*args, **kwargs)
        source = args[0] if args else None
        if func in _STEP_FUNCTIONS and isinstance(source, torch.Tensor) \
                and isinstance(out, torch.Tensor) and source.requires_grad \
                and out.shape == source.shape and out.is_floating_point():
            return source + (out - source).detach()
        return out


def expectation(samples: int = EOT_SAMPLES) -> Callable[[ModelFn], ModelFn]:
    """Expectation over Transformation: the mean of ``samples`` forward passes."""
    def wrap(model: ModelFn) -> ModelFn:
        return lambda x: torch.stack([model(x) for _ in range(samples)]).mean(dim=0)
    return wrap


def straight_through(model: ModelFn) -> ModelFn:
    """BPDA with the identity: step functions (round, floor, sign, ...) and ``detach`` in
    the model's forward pass let gradients through (Python modules only; TorchScript code is
    out of reach)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        with _StraightThrough():
            return model(x)
    return forward


def log_probabilities(model: ModelFn) -> ModelFn:
    """For a model that returns probabilities: their logarithm, which losses expect."""
    return lambda x: torch.log(model(x).clamp_min(1e-30))


def rescaled(model: ModelFn) -> ModelFn:
    """Logits divided by their per-sample standard deviation (held constant), so a softmax
    saturated by a huge scale gives gradients again; the ranking is unchanged."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        return logits / logits.std(dim=1, keepdim=True).detach().clamp_min(1e-12)
    return forward


class AdaptedAttack(Attack):
    """An attack running on a model changed by adaptations (see `adapted`). Which threat
    models and objectives it handles is the inner attack's answer."""

    def __init__(self, inner: Attack, adaptations: Sequence[Adaptation]) -> None:
        self.inner = inner
        self.adaptations = tuple(sorted(adaptations, key=lambda adaptation: adaptation.layer))
        self._set_params(**inner.params)

    def supports(self, threat: ThreatModel) -> bool:
        return self.inner.supports(threat)

    def serves(self, objective: type[Objective]) -> bool:
        return self.inner.serves(objective)

    def unserved_reason(self, objective: type[Objective]) -> str:
        return self.inner.unserved_reason(objective)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        for adaptation in self.adaptations:
            model = adaptation.wrap(model)
        return self.inner.run(model, x, objective, threat, generator)


def adapted(attack: Attack, adaptations: Sequence[Adaptation]) -> Attack:
    """``attack`` on the model as ``adaptations`` change it, named ``NAME+TAG[+TAG]``."""
    adaptations = sorted(adaptations, key=lambda adaptation: adaptation.layer)
    name = "+".join([attack.name, *(adaptation.tag for adaptation in adaptations)])
    cls = type(type(attack).__name__ + "Adapted", (AdaptedAttack,), {
        "name": name, "norms": attack.norms, "kind": attack.kind,
        "requires": attack.requires, "version": attack.version,
        "single_step": attack.single_step,
        "__doc__": f"{attack.name} through {', '.join(a.tag for a in adaptations)}."})
    instance: Attack = cls(attack, adaptations)
    return instance
